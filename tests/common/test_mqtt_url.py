"""``common.mqtt_url``: the one broker-URL parser of the board's ``[station] url``,
the station file's ``broker`` and ``cabinwatch station --broker``."""

from __future__ import annotations

import pytest

from common.mqtt_url import BrokerAddress, BrokerUrlError, Transport, parse_broker_url


@pytest.mark.parametrize(
    "url, parsed",
    [
        ("mqtt://127.0.0.1:1883", BrokerAddress(Transport.MQTT, "127.0.0.1", 1883)),
        ("mqtt://station-broker", BrokerAddress(Transport.MQTT, "station-broker", 1883)),
        ("mqtts://10.0.0.5", BrokerAddress(Transport.MQTTS, "10.0.0.5", 8883)),
        ("mqtt://broker:11883", BrokerAddress(Transport.MQTT, "broker", 11883)),
        ("MQTTS://b.local:9999", BrokerAddress(Transport.MQTTS, "b.local", 9999)),
        ("mqtt://[::1]:1884/", BrokerAddress(Transport.MQTT, "::1", 1884)),
    ],
)
def test_good_broker_urls_and_back(url, parsed):
    assert parse_broker_url(url) == parsed
    assert parse_broker_url(parsed.url) == parsed
    assert parsed.tls is (parsed.transport is Transport.MQTTS)


@pytest.mark.parametrize(
    "url, words",
    [
        ("", "empty broker URL"),
        ("127.0.0.1:1883", "not a URL"),
        ("http://127.0.0.1:1883", "unknown scheme 'http': must start with mqtt:// or mqtts://"),
        ("tcp://127.0.0.1:1883", "unknown scheme 'tcp'"),
        ("mqtt://:1883", "no host"),
        ("mqtt://", "no host"),
        ("mqtt://127.0.0.1:99999", "out of range"),
        ("mqtt://127.0.0.1:port", "port"),
        ("mqtt://127.0.0.1:0", "port must be in 1..65535 (got 0)"),
        ("mqtt://u:p@127.0.0.1:1883", "no user or password in the URL (use credentials = FILE)"),
        ("mqtt://127.0.0.1:1883/topic", "no path, query or fragment"),
        ("mqtt://127.0.0.1:1883?x=1", "no path, query or fragment"),
        ("mqtt://[::1:1883", "IPv6"),
        ("mqtt://a b:1883", "must not contain spaces or control characters"),
        ("mqtt://h\n", "must not contain spaces or control characters"),
    ],
)
def test_bad_broker_urls_are_one_line_naming_the_problem(url, words):
    with pytest.raises(BrokerUrlError) as e:
        parse_broker_url(url)
    assert words.lower() in str(e.value).lower() and "\n" not in str(e.value)
    if url:
        assert str(e.value).startswith(repr(url))
