"""``common.mqtt_credentials``: the broker account file of the board and the aggregator."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from common.mqtt_credentials import Credentials, read_credentials


def test_a_good_file_is_read(tmp_path):
    p = tmp_path / "agg.cred"
    p.write_text('username = "aggregator"\npassword = "s3cret"\n', encoding="utf-8")
    assert read_credentials(p) == Credentials("aggregator", "s3cret")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('username = "b1"\n', "password: missing"),
        ('password = "x"\n', "username: missing"),
        ('username = "b1"\npassword = ""\n', "password: must not be empty"),
        ('username = "b1"\npassword = "x"\nport = 1\n', "port: unknown key"),
        ('username = "b1"\npassword = 5\n', "password: must be a string"),
        ("username = \n", "(syntax)"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_and_key(tmp_path, text, needle):
    p = tmp_path / "mqtt.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_credentials(p)
    msg = str(e.value)
    assert "mqtt.toml" in msg and needle in msg and "\n" not in msg, msg
