"""The monitor core's stages, in the order the data flows through them.

=====================  ==============================================================
``topology``           channels, volumes and hatch groups (who is connected to whom)
``conditioning``       samples -> clean, host-timed sums per channel (clock, reboot,
                       range/status, stuck, spike register)
``windows``            the tick's sums -> ring-buffer tiers -> straight-line fits of
                       every window (``WindowFits``)
``health``             fits and fault flags -> each sensor's standing
                       (``HealthSnapshot``), learnt noise
``estimation``         fits + health -> per-volume fused, temperature-compensated
                       slopes, mass rate, hole, reserves (``VolumeFit``)
``regime``             the decay's shape -> orifice or crack
``alarm_rules``        pure functions: (fits, health, groups, limits) -> conditions
``alarm_book``         the ``Alarm`` state machines, keyed by typed keys
``results``            what a tick hands out (``TickResult``): data only
=====================  ==============================================================

``firmware_host.core.MonitorCore`` wires them together; see docs/monitor.md.
"""
