"""The station layer: many boards' estimates fused over MQTT, the station picture,
and the isolation advisor that proposes hatch closures.  It advises; it never
commands a board (each board keeps alarming on its own)."""
