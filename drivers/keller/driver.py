"""``KellerDriver``: a ``driver = "keller"`` link, polled (docs/drivers.md, "KELLER bus").

Per device: F48 (initialise: class, group, firmware, STAT), F69 (serial
number) and F30 80/81 (P1 min/max: the range) once, reported as an
``IdentityFrame``; then every poll F73 P1 and F73 TOB1, one SAMPLE record
(pressure in Pa, TOB1 in deg C, status bits from ``values``) whose time is
the middle of the P1 transaction.  The sensor clock ``t_us`` is that time in
microseconds since the link started polling the device; F48 STAT 0 from a
device that had already been initialised (a power interruption) restarts it,
so the monitor sees the clock go back and raises SENSOR_REBOOT.

Exception 32 (not initialised) -> F48, then the request once more.
Exceptions 1-4 are counted by code and end the poll.  No valid reply
(silence, noise, bad CRC) -> counted, repeated after a backoff, and the next
poll starts with F48.
"""

from __future__ import annotations

import math

from drivers.keller import fast
from drivers.keller.values import PA_PER_BAR, sample_status
from drivers.keller.wire import (
    REPLY_SIZE,
    REQUEST_SIZE,
    Channel,
    Coefficient,
    ExceptionCode,
    Function,
    Stat,
)
from drivers.match import MatchStatus
from drivers.polled import (
    DeviceState,
    PolledDriver,
    Scan,
    ScanStatus,
    TxResult,
    TxStatus,
    line_budget,
    scan_of_match,
    wire_s,
)

#: reply delay assumed for the line budget (measured 1.3-1.8 ms for reads)
REPLY_DELAY_S = 0.002
#: the device is ready again this long after its reply
SILENT_S = 0.0005
#: F73 transactions per sample: P1 and TOB1
READS_PER_SAMPLE = 2
_P1 = bytes((Channel.P1,))
_TOB1 = bytes((Channel.TOB1,))
_NOT_INIT = int(ExceptionCode.NOT_INITIALISED)


def read_transaction_s(baudrate: int) -> float:
    """Line time of one F73 transaction: request, reply delay, reply, silent interval."""
    size = REQUEST_SIZE[Function.READ_FLOAT] + REPLY_SIZE[Function.READ_FLOAT]
    return wire_s(size, baudrate) + REPLY_DELAY_S + SILENT_S


def keller_budget(link: str, rates_hz, baudrate: int):
    """The ``LineBudget`` of KELLER sensors at ``rates_hz`` on one line."""
    return line_budget(link, rates_hz, read_transaction_s(baudrate), READS_PER_SAMPLE, baudrate)


class KellerDriver(PolledDriver):
    """KELLER bus devices on one RS-485 line (see the module docstring and ``PolledDriver``)."""

    def __init__(self, name: str, url: str, **options):
        options.setdefault("silent_s", SILENT_S)
        options.setdefault("reply_delay_s", REPLY_DELAY_S)
        super().__init__(name, url, **options)

    # -- framing -------------------------------------------------------------
    def _scan(self, buf: bytearray, start: int, expect: object) -> Scan:
        addr, fn = expect  # type: ignore[misc]
        scan = scan_of_match(fast.match_reply(buf, addr, fn, start))
        if scan is not None:
            return scan
        # another device's (or function's) complete reply: skip it whole
        other = (
            fast.match_reply(buf, buf[start], buf[start + 1] & 0x7F, start)
            if (len(buf) - start >= 2 and (buf[start + 1] & 0x7F) in REPLY_SIZE)
            else None
        )
        if other is not None and other.status in (MatchStatus.REPLY, MatchStatus.EXCEPTION):
            return Scan(ScanStatus.BAD, size=other.size, reason="foreign")
        return Scan(ScanStatus.BAD, size=1, reason="noise")

    # -- transactions with the KELLER session rules ----------------------------
    def call(self, dev: DeviceState, fn: Function, params: bytes = b"") -> TxResult:
        """One request to ``dev`` with the rules: exception 32 -> F48 and once more;
        no valid reply -> repeated ``retries`` times after a backoff."""
        req = fast.request(dev.addr, int(fn), params)
        expect = (dev.addr, int(fn))
        reinitialised = False
        attempt = 0
        while True:
            r = self.transact(req, expect, REPLY_SIZE[fn])
            if r.ok or r.status is TxStatus.LINK_DOWN:
                return r
            if r.status is TxStatus.EXCEPTION:
                if r.code == _NOT_INIT and fn != Function.INITIALISE and not reinitialised:
                    reinitialised = True
                    dev.initialised = False
                    self.count("reinitialisations")
                    if self.initialise(dev):
                        continue
                return r
            attempt += 1
            if attempt > self.retries or self._stop_poll.is_set():
                dev.initialised = False  # the next poll starts with F48
                return r
            self.backoff(attempt)

    def initialise(self, dev: DeviceState) -> bool:
        """F48; a STAT 0 after an earlier initialisation restarts the device's clock."""
        r = self.call(dev, Function.INITIALISE)
        if not r.ok:
            return False
        cls, group, year, week, buf, stat = fast.f48_identity(r.data)
        if stat == 0 and dev.ever_initialised:
            dev.epoch_s = r.t_mid_s  # power interruption: t_us restarts -> SENSOR_REBOOT
            self.count("reboots")
        dev.initialised = dev.ever_initialised = True
        dev.info.update(device_class=cls, group=group, firmware=(year, week), buf=buf)
        return True

    def identify(self, dev: DeviceState) -> bool:
        """F48, F69 and F30 80/81 -> an ``IdentityFrame`` (exceptions leave 0 / NaN)."""
        if not self.initialise(dev):
            return False
        sn = self.call(dev, Function.SERIAL_NUMBER)
        lo = self.call(dev, Function.READ_COEFFICIENT, bytes((Coefficient.P1_MIN_BAR,)))
        hi = self.call(dev, Function.READ_COEFFICIENT, bytes((Coefficient.P1_MAX_BAR,)))
        if any(r.status in (TxStatus.TIMEOUT, TxStatus.LINK_DOWN) for r in (sn, lo, hi)):
            return False
        serial = fast.f69_serial(sn.data) if sn.ok else 0
        p_min = fast.f30_value(lo.data) * PA_PER_BAR if lo.ok else math.nan
        p_max = fast.f30_value(hi.data) * PA_PER_BAR if hi.ok else math.nan
        year, week = dev.info["firmware"]
        dev.info.update(serial=serial, range_pa=(p_min, p_max), identified=True)
        self.emit_identity(
            dev,
            model=f"KELLER {dev.info['device_class']}.{dev.info['group']}",
            serial=serial,
            firmware=(year & 0xFF) << 8 | (week & 0xFF),
            range_pa=(p_min, p_max),
        )
        return True

    def _service(self, dev: DeviceState) -> bool:
        if not dev.info.get("identified"):
            if not self.identify(dev):
                return False
        elif not dev.initialised and not self.initialise(dev):
            return False
        p = self.call(dev, Function.READ_FLOAT, _P1)
        if not p.ok:
            return False
        t = self.call(dev, Function.READ_FLOAT, _TOB1)
        p_bar, p_stat = fast.f73_value(p.data)
        if t.ok:
            t_c, t_stat = fast.f73_value(t.data)
        else:
            t_c, t_stat = math.nan, int(Stat.TOB1)
        status = sample_status(p_bar, p_stat, t_c, t_stat)
        self.emit_sample(dev, p.t_mid_s, p_bar * PA_PER_BAR, t_c, status)
        return True
