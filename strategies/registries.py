"""The two plug-in registries of this package: aggregation rules and pre-aggregators."""

from __future__ import annotations

from common.registry import Registry
from strategies.base import PreFunction, RuleFunction

AGGREGATORS: Registry[RuleFunction] = Registry("aggregator")
PRE_AGGREGATORS: Registry[PreFunction] = Registry("pre-aggregator")
