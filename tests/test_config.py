"""Settings: config/default.toml < a file < CRAWL_* environment < flags, and clear errors."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path

import pytest

from crawler.config import HostPolicy, Settings, load_settings, load_with_origins
from crawler.config.settings import field_section
from crawler.errors import ConfigError

DEFAULT_TOML = Path(__file__).parent.parent / "config" / "default.toml"


def toml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crawl.toml"
    path.write_text(text)
    return path


# -- config/default.toml ------------------------------------------------------------


def test_default_toml_loads_to_exactly_the_defaults() -> None:
    assert load_settings(DEFAULT_TOML, env={}) == Settings()


def test_default_toml_names_every_setting() -> None:
    data = tomllib.loads(DEFAULT_TOML.read_text())
    names = set()
    for key, value in data.items():
        if key == "hosts":
            names.update(("host_overrides", "host_headers", "host_render"))  # [hosts."p".headers]
        elif key == "auth":
            names.add("auth")
        elif isinstance(value, dict):
            names.update(value)
        else:
            names.add(key)
    assert names == set(Settings.model_fields)


def test_default_toml_puts_every_setting_in_its_own_section() -> None:
    data = tomllib.loads(DEFAULT_TOML.read_text())
    for section, table in data.items():
        if section != "hosts":
            for key in table:
                assert field_section(key) == section, key


def test_default_toml_explains_every_setting() -> None:
    lines = DEFAULT_TOML.read_text().splitlines()
    setting = re.compile(r"^\w+ = ")
    for i, line in enumerate(lines):
        if setting.match(line):
            above = lines[max(0, i - 3):i]  # its comment, or a group's shared one
            assert any(a.startswith("#") for a in above), f"no comment for {line!r}"


# -- precedence ------------------------------------------------------------------------


def test_a_file_overrides_the_defaults(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "[worker]\nconcurrency = 10\n[politeness]\ndelay = 0.5\n")
    settings = load_settings(path, env={})
    assert (settings.concurrency, settings.delay) == (10, 0.5)
    assert settings.max_attempts == Settings().max_attempts


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "concurrency = 10\n")
    settings = load_settings(path, env={"CRAWL_CONCURRENCY": "20"})
    assert settings.concurrency == 20


def test_flags_override_the_environment(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "concurrency = 10\n")
    settings = load_settings(path, env={"CRAWL_CONCURRENCY": "20"},
                             overrides={"concurrency": 30, "delay": None})
    assert settings.concurrency == 30
    # A flag not given (None) leaves the lower layers alone.
    assert settings.delay == Settings().delay


def test_crawl_config_in_the_environment_names_the_file(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "crawl = \"from-file\"\n")
    assert load_settings(env={"CRAWL_CONFIG": str(path)}).crawl == "from-file"


def test_environment_values_are_converted_to_each_settings_type() -> None:
    settings = load_settings(env={"CRAWL_OBEY_ROBOTS": "false", "CRAWL_DELAY": "0.25",
                                  "CRAWL_EXCLUDE": r"\.pdf$,/private/", "CRAWL_REDIS_URL": ""})
    assert settings.obey_robots is False
    assert settings.delay == 0.25
    assert settings.exclude == (r"\.pdf$", "/private/")
    assert settings.redis_url is None


@pytest.mark.parametrize(("value", "expected"), [
    # A regex's {m,n} and [a,b] stay whole: they were split at the comma, silently.
    (r"/p[0-9]{1,2}\.html", (r"/p[0-9]{1,2}\.html",)),
    (r"/a[x,y]/,/b/", (r"/a[x,y]/", "/b/")),
    (r"\[x,/y/", (r"\[x", "/y/")),  # an escaped bracket opens nothing
    # An array, as the README and TOML write lists: its items, not its text.
    ('["ref_*", "from"]', ("ref_*", "from")),
    ("['a,b', 'c']", ("a,b", "c")),
    ("a, b ,c", ("a", "b", "c")),
])
def test_list_values_from_the_environment_keep_patterns_whole(
        value: str, expected: tuple[str, ...]) -> None:
    assert load_settings(env={"CRAWL_EXCLUDE": value}).exclude == expected


def test_an_ipv6_dns_server_is_not_read_as_an_array() -> None:
    settings = load_settings(env={"CRAWL_DNS_SERVERS": "[::1]:5353,127.0.0.1"})
    assert settings.dns_servers == ("[::1]:5353", "127.0.0.1")


def test_an_array_of_other_than_strings_is_an_error() -> None:
    with pytest.raises(ConfigError, match="CRAWL_EXCLUDE"):
        load_settings(env={"CRAWL_EXCLUDE": "[1, 2]"})


def test_host_tables_become_host_overrides(tmp_path: Path) -> None:
    path = toml_file(tmp_path, '[hosts."example.com"]\nmax_per_host = 4\ndelay = 0.25\n'
                               '[hosts."slow.example.com"]\ndelay = 5\n')
    settings = load_settings(path, env={})
    assert settings.host_overrides == {"example.com": HostPolicy(4, 0.25),
                                       "slow.example.com": HostPolicy(1, 5.0)}
    assert settings.policy_for("www.example.com") == HostPolicy(4, 0.25)
    assert settings.policy_for("a.slow.example.com") == HostPolicy(1, 5.0)
    assert settings.policy_for("example.org") == HostPolicy(1, 1.0)


def test_replace_converts_to_the_type_of_the_default() -> None:
    # A base built in code may hold an int where the default is a float.
    base = Settings(total_timeout=5)
    assert base.replace(total_timeout=0.5).total_timeout == 0.5


def test_replace_checks_like_loading() -> None:
    assert Settings().replace(concurrency="7").concurrency == 7
    with pytest.raises(ConfigError):
        Settings().replace(scope="planet")


# -- errors name the key and what was expected -----------------------------------------


@pytest.mark.parametrize(("env", "key", "expected"), [
    ({"CRAWL_CONCURRENCY": "abc"}, "concurrency", "a whole number"),
    ({"CRAWL_CONCURRENCY": "0"}, "concurrency", "a whole number >= 1"),
    ({"CRAWL_DELAY": "-1"}, "delay", "a number of seconds >= 0"),
    ({"CRAWL_DELAY": "nan"}, "delay", "a number of seconds >= 0"),
    ({"CRAWL_LEASE_TIME": "inf"}, "lease_time", "a number of seconds >= 0"),
    ({"CRAWL_OBEY_ROBOTS": "maybe"}, "obey_robots", "true or false"),
    ({"CRAWL_SCOPE": "planet"}, "scope", "host, domain or any"),
    ({"CRAWL_REDIS_URL": "localhost:6379"}, "redis_url", "redis://"),
    ({"CRAWL_CRAWL": "a:b"}, "crawl", "without braces, colons or spaces"),
    ({"CRAWL_ALLOW_CIDRS": "10.0.0.0/33"}, "allow_cidrs", "CIDR"),
    ({"CRAWL_DEDUP_BUCKET_BITS": "30"}, "dedup_bucket_bits", "from 0 to 24"),
    # An unset variable in a compose file: no product token, so robots.txt groups
    # naming the crawler were skipped (a trial's crawl fetched what they disallowed).
    ({"CRAWL_USER_AGENT": ""}, "user_agent", "a product token first"),
    ({"CRAWL_USER_AGENT": " /1.0"}, "user_agent", "a product token first"),
])
def test_a_bad_environment_value_names_the_key_and_what_was_expected(
        env: dict[str, str], key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(env=env)
    assert error.value.key == key
    assert expected in str(error.value)


@pytest.mark.parametrize(("text", "key"), [
    ('scope = "planet"\n', "scope"),
    ('concurrency = "many"\n', "concurrency"),
    ("concurrency = 2.5\n", "concurrency"),
    ("delay = true\n", "delay"),
    ("exclude = [1, 2]\n", "exclude"),
    ("[worker]\nconcurency = 5\n", "concurency"),
    ('[hosts."a.test"]\nmax_per_host = 0\n', "hosts.a.test.max_per_host"),
    ('[hosts."a.test"]\nlimit = 2\n', "hosts.a.test.limit"),
    ('[hosts."a.test"]\nlimt = 2\n', "hosts.a.test"),
    ('[hosts."a.test"]\ndelay = "slow"\n', "hosts.a.test.delay"),
    ("concurrency = \n", "config"),
])
def test_a_bad_file_value_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(toml_file(tmp_path, text), env={})
    assert error.value.key == key
    named = "TOML" if key == "config" else key.rsplit(".", 1)[-1]
    assert named in str(error.value)


# -- one rule, one message, and where the value came from -----------------------------


@pytest.mark.parametrize("value", ["0", "-5", "abc", "2.5"])
def test_every_bad_whole_number_gets_the_same_message(value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(env={"CRAWL_CONCURRENCY": value})
    assert str(error.value) == (f"environment variable CRAWL_CONCURRENCY: concurrency: expected "
                                f"a whole number >= 1, got {value!r}")


def test_a_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--max-depth: max_depth: expected a whole number "
                                          r">= 0, got -1$"):
        load_settings(env={}, overrides={"max_depth": -1})


def test_a_bad_file_value_names_the_file_and_line(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "# a comment\n[worker]\nconcurrency = 0\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value).startswith(f"{path} line 3: concurrency: expected a whole number")


def test_bad_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "concurrency = = 5\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))} line 1: not valid TOML"):
        load_settings(path, env={})


def test_an_unknown_setting_suggests_the_closest_name(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "concurrancy = 5\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value) == (f"{path} line 1: unknown setting 'concurrancy' "
                                "(did you mean 'concurrency'?)")


# -- sections are real ---------------------------------------------------------------------


def test_a_key_in_the_wrong_section_is_an_error_naming_its_section(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "[worker]\ndelay = 5\n[fetch]\ndelay = 0.5\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value) == f"{path} line 2: delay: belongs in [politeness], not [worker]"


def test_a_misspelled_section_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "[politness]\ndelay = 5\n")
    with pytest.raises(ConfigError, match=r"line 1: unknown section \[politness\] "
                                          r"\(did you mean 'politeness'\?\)"):
        load_settings(path, env={})


def test_a_key_set_twice_is_an_error(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "delay = 1\n[politeness]\ndelay = 2\n")
    with pytest.raises(ConfigError, match=r"line 3: delay: set twice \(also at .* line 1\)"):
        load_settings(path, env={})


def test_a_flat_file_and_a_sectioned_file_mean_the_same(tmp_path: Path) -> None:
    flat = load_settings(toml_file(tmp_path, "delay = 2\nconcurrency = 9\n"), env={})
    sectioned = load_settings(toml_file(tmp_path, "[politeness]\ndelay = 2\n"
                                                  "[worker]\nconcurrency = 9\n"), env={})
    assert flat == sectioned and (flat.delay, flat.concurrency) == (2.0, 9)


def test_render_is_a_setting_at_the_top_of_a_flat_file_and_a_section_too(
        tmp_path: Path) -> None:
    # "render" names both: the README's crawl.toml line render = "auto" was
    # refused as "[render] is a section, not a setting".
    flat = load_settings(toml_file(tmp_path, 'render = "auto"\n'), env={})
    sectioned = load_settings(toml_file(tmp_path, '[render]\nrender = "auto"\n'), env={})
    assert flat.render == sectioned.render == "auto"


def test_an_unknown_environment_variable_is_a_warning_with_a_suggestion(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "crawler.config"):
        settings = load_settings(env={"CRAWL_CONCURENCY": "5", "CRAWL_TEST_REDIS_URL": "x"})
    assert settings.concurrency == Settings().concurrency
    assert [r.getMessage() for r in caplog.records] == [
        "environment variable CRAWL_CONCURENCY is not a setting; ignored "
        "(did you mean CRAWL_CONCURRENCY?)"]


def test_the_origin_of_every_value_is_known(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "[politeness]\ndelay = 2\n")
    _, origins = load_with_origins(path, env={"CRAWL_SCOPE": "any"},
                                   overrides={"concurrency": 5, "max_depth": None})
    assert origins == {"delay": f"{path} line 2", "scope": "environment variable CRAWL_SCOPE",
                       "concurrency": "--concurrency"}


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml"):
        load_settings(tmp_path / "nowhere.toml", env={})


def test_the_command_a_host_table_conflict_suggests_runs_as_printed() -> None:
    """A crawl holding other host overrides than a worker's file: the message's
    `crawl config set host_overrides=...` was a Python repr that config set refused.
    It is shell-quoted JSON, and config set reads it back to the same tables."""
    import shlex

    from crawler.config.settings import check_value
    from crawler.store.crawl_settings import _conflict, parse_assignments

    given = Settings(host_overrides={"a.test:8002": HostPolicy(max_per_host=1, delay=0.2)})
    error = _conflict("host_overrides", {"a.test:8002": {"max_per_host": 1, "delay": 0.5}},
                      given, "crawl.toml")
    command = str(error).split("`")[1]
    argv = shlex.split(command)
    assert argv[:3] == ["crawl", "config", "set"]
    [(name, value)] = parse_assignments(argv[3:]).items()
    assert check_value(name, value, "crawl config set") == given.host_overrides
    assert check_value("host_overrides", "", "crawl config set") == {}
    # Any value: a user agent's spaces and parentheses, a pattern's | and *.
    for name, value in (("user_agent", "mybot/1.0 (+https://a.test/bot)"),
                        ("exclude", ("/a|/b", r"/p/\d*,x"))):
        given = Settings(**{name: value})
        printed = str(_conflict(name, "other", given, "--flag")).split("`")[1]
        [(got, text)] = parse_assignments(shlex.split(printed)[3:]).items()
        assert got == name and check_value(name, text, "crawl config set") == value
    with pytest.raises(ConfigError, match="JSON in crawl config set"):
        check_value("host_overrides", "{not json", "crawl config set")
