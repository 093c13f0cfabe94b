"""The gas laws of air (placeholder until the shared module lands)."""

R_AIR = 287.05  # J/(kg K)
GAMMA = 1.4
#: (2/(gamma+1))^((gamma+1)/(2(gamma-1))), the choked-flow factor.
CHOKE = (2.0 / (GAMMA + 1.0)) ** ((GAMMA + 1.0) / (2.0 * (GAMMA - 1.0)))
SECONDS_PER_DAY = 86400.0
