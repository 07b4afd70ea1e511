# pragma version ~=0.4.3
"""
@title Workload NFT collection
@notice ERC721-style ownership with a public, capped, sequential mint: every mint reads
        and bumps the same counter, a real hot spot.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    token_id: indexed(uint256)

name: public(String[32])
totalSupply: public(uint256)
maxSupply: public(uint256)
ownerOf: public(HashMap[uint256, address])
balanceOf: public(HashMap[address, uint256])


@deploy
def __init__(_name: String[32], _max_supply: uint256):
    self.name = _name
    self.maxSupply = _max_supply


@external
def mint() -> uint256:
    token_id: uint256 = self.totalSupply + 1
    assert token_id <= self.maxSupply, "sold out"
    self.ownerOf[token_id] = msg.sender
    self.balanceOf[msg.sender] += 1
    self.totalSupply = token_id
    log Transfer(sender=empty(address), receiver=msg.sender, token_id=token_id)
    return token_id


@external
def transferFrom(_from: address, _to: address, _token_id: uint256):
    assert self.ownerOf[_token_id] == _from, "not owner"
    assert msg.sender == _from, "not allowed"
    self.ownerOf[_token_id] = _to
    self.balanceOf[_from] -= 1
    self.balanceOf[_to] += 1
    log Transfer(sender=_from, receiver=_to, token_id=_token_id)
