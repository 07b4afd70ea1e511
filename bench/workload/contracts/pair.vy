# pragma version ~=0.4.3
"""
@title Workload constant-product pair (Uniswap-V2 style)
@notice Holds two ERC20 reserves; swaps pull the input with transferFrom (the caller
        approves the pair), charge 0.3%, and keep reserve0 * reserve1 non-decreasing.
        Liquidity providers get pool shares.
"""

interface IERC20:
    def transferFrom(_from: address, _to: address, _value: uint256) -> bool: nonpayable
    def transfer(_to: address, _value: uint256) -> bool: nonpayable

event Swap:
    trader: indexed(address)
    token_in: indexed(address)
    amount_in: uint256
    amount_out: uint256

event Mint:
    provider: indexed(address)
    amount0: uint256
    amount1: uint256
    shares: uint256

token0: public(address)
token1: public(address)
reserve0: public(uint256)
reserve1: public(uint256)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])


@deploy
def __init__(_token0: address, _token1: address):
    self.token0 = _token0
    self.token1 = _token1


@external
def add_liquidity(amount0: uint256, amount1: uint256) -> uint256:
    supply: uint256 = self.totalSupply
    shares: uint256 = 0
    if supply == 0:
        shares = isqrt(amount0 * amount1)
    else:
        shares = min(amount0 * supply // self.reserve0, amount1 * supply // self.reserve1)
    assert shares > 0, "no shares"
    extcall IERC20(self.token0).transferFrom(msg.sender, self, amount0)
    extcall IERC20(self.token1).transferFrom(msg.sender, self, amount1)
    self.reserve0 += amount0
    self.reserve1 += amount1
    self.totalSupply = supply + shares
    self.balanceOf[msg.sender] += shares
    log Mint(provider=msg.sender, amount0=amount0, amount1=amount1, shares=shares)
    return shares


@external
def swap(token_in: address, amount_in: uint256, min_out: uint256) -> uint256:
    reserve_in: uint256 = 0
    reserve_out: uint256 = 0
    token_out: address = empty(address)
    if token_in == self.token0:
        reserve_in = self.reserve0
        reserve_out = self.reserve1
        token_out = self.token1
    else:
        assert token_in == self.token1, "unknown token"
        reserve_in = self.reserve1
        reserve_out = self.reserve0
        token_out = self.token0
    with_fee: uint256 = amount_in * 997
    amount_out: uint256 = with_fee * reserve_out // (reserve_in * 1000 + with_fee)
    assert amount_out >= min_out, "slippage"
    assert amount_out > 0, "zero output"
    extcall IERC20(token_in).transferFrom(msg.sender, self, amount_in)
    extcall IERC20(token_out).transfer(msg.sender, amount_out)
    if token_in == self.token0:
        self.reserve0 = reserve_in + amount_in
        self.reserve1 = reserve_out - amount_out
    else:
        self.reserve1 = reserve_in + amount_in
        self.reserve0 = reserve_out - amount_out
    log Swap(trader=msg.sender, token_in=token_in, amount_in=amount_in, amount_out=amount_out)
    return amount_out
