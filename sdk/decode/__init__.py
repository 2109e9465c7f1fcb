"""CTC decoding: greedy and prefix beam search, offline and streaming (numpy only)."""

from slsdk.decode.ctc import (
    DEFAULT_BEAM,
    BeamStream,
    EndpointConfig,
    EndpointRule,
    GlossEvent,
    GreedyStream,
    LanguageModel,
    NGramLM,
    Result,
    greedy,
    prefix_beam_search,
)

__all__ = [
    "DEFAULT_BEAM",
    "greedy",
    "prefix_beam_search",
    "GreedyStream",
    "BeamStream",
    "Result",
    "GlossEvent",
    "EndpointRule",
    "EndpointConfig",
    "LanguageModel",
    "NGramLM",
]
