"""Elastic block space (layer 2, pure logic, no Ray): what a dApp subscribes with and what it
gets.

``ebs.subscription`` is the registry transaction (subscribe, cancel) and its checks;
``ebs.space`` a space's gas limit and parallelism and the auction for scarce CUs;
``ebs.stakes`` the registry's books: the stakes held, and the refunds the block after a
cancellation starts with. The coordinator (``coordinator/subscriptions.py``) gives them their
effect on the running node.
"""

from ebs.space import Bid, ElasticSpace, auction
from ebs.stakes import LedgerError, Settlement, StakeEntry, StakeLedger
from ebs.subscription import (
    CANCEL,
    MIN_STAKE,
    REGISTRY,
    SUBSCRIBE,
    Cancel,
    Subscribe,
    SubscriptionError,
    cancel_data,
    parse,
    subscribe_data,
    subscription_id,
)

__all__ = [
    "CANCEL",
    "MIN_STAKE",
    "REGISTRY",
    "SUBSCRIBE",
    "Bid",
    "Cancel",
    "ElasticSpace",
    "LedgerError",
    "Settlement",
    "StakeEntry",
    "StakeLedger",
    "Subscribe",
    "SubscriptionError",
    "auction",
    "cancel_data",
    "parse",
    "subscribe_data",
    "subscription_id",
]
