"""Paroscientific Digiquartz transducers (RS-232/RS-485, ASCII ``*DDSSCC`` commands).

| module | one job |
|---|---|
| ``wire`` | the grammar: build ``*DDSSCC[=v]\\r\\n``, scan ``*00SS<payload>\\r\\n`` |
| ``values`` | unit codes (UN 1..8) -> pascal |
| ``driver`` | ``DigiquartzDriver``: polled (P3 + Q3) or continuous (P4/P7) |

Facts: ../shared/TRANSDUCERS.md; design note: docs/drivers.md.
"""
