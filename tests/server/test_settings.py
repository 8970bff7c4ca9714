"""Settings layer as documented: defaults → config.toml → ENGRAM_* environment → CLI flags."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engram.server.settings import Settings, SettingsError, load_settings

EXAMPLE = Path(__file__).parents[2] / "config.example.toml"


def test_each_layer_overrides_the_one_before(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('default_agent = "from-file"\nblock_char_limit = 3000\nlog_level = "debug"\n')
    environ = {"ENGRAM_DEFAULT_AGENT": "from-env", "ENGRAM_BLOCK_CHAR_LIMIT": "4000"}
    settings = load_settings(config, {"default_agent": "from-flag"}, environ=environ)
    assert settings.default_agent == "from-flag"
    assert settings.block_char_limit == 4000
    assert settings.log_level == "DEBUG"


def test_config_path_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "engram.toml"
    config.write_text('default_agent = "via-env-path"\n')
    assert load_settings(environ={"ENGRAM_CONFIG": str(config)}).default_agent == "via-env-path"


def test_unknown_key_in_the_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("block_limit = 10\n")
    with pytest.raises(SettingsError, match=r"unknown setting 'block_limit' in .*config.toml"):
        load_settings(config, environ={})


def test_invalid_value_names_key_and_source(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("block_char_limit = 5\n")
    with pytest.raises(SettingsError, match=r"invalid setting 'block_char_limit' \(from .*config.toml\)"):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match=r"from command-line flag --database-url.*must start with postgresql://"):
        load_settings(overrides={"database_url": "mysql://x"}, environ={})


def test_missing_or_broken_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "absent.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("default_agent = \n")
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(broken, environ={})


def test_the_database_password_never_shows_in_the_settings_repr() -> None:
    settings = load_settings(overrides={"database_url": "postgresql://u:hunter2@db/engram"}, environ={})
    assert "hunter2" not in repr(settings)
    assert settings.sqlalchemy_url() == "postgresql+psycopg://u:hunter2@db/engram"


def test_config_example_documents_every_setting_and_loads() -> None:
    documented = tomllib.loads(EXAMPLE.read_text())
    assert set(documented) == set(Settings.model_fields) - {"data_dir", "database_url"}
    text = EXAMPLE.read_text()
    for key in Settings.model_fields:
        assert f"{key} =" in text, f"config.example.toml does not mention {key}"
    assert load_settings(EXAMPLE, environ={}) == load_settings(environ={"ENGRAM_CONFIG": str(EXAMPLE)})
    assert load_settings(EXAMPLE, environ={}).model_dump() == Settings().model_dump(), "example shows the defaults"


def test_a_token_for_the_local_principal_is_refused_naming_what_to_do_instead(tmp_path: Path) -> None:
    reserved = (
        "principal 'local' is reserved for the local user (stdio, the CLI, and HTTP without tokens): a token for "
        "it would open that user's memory over HTTP; give the token another principal, such as the name of the "
        "person or service that uses it"
    )
    with pytest.raises(SettingsError) as from_environment:
        load_settings(environ={"ENGRAM_TOKENS": "alice=alice-token-0123456789,local=local-token-0123456789"})
    assert str(from_environment.value) == (
        f"invalid setting 'tokens' (from environment variable ENGRAM_TOKENS): Value error, {reserved}"
    )
    config = tmp_path / "config.toml"
    config.write_text('tokens = { local = "local-token-0123456789" }\n')
    with pytest.raises(SettingsError) as from_file:
        load_settings(config, environ={})
    assert str(from_file.value) == f"invalid setting 'tokens' (from {config}): Value error, {reserved}"


@pytest.mark.parametrize(
    "name",
    ["my agent", "-dash-first", "x" * 101, "", "agent/1"],
    ids=["space", "dash-first", "101-chars", "empty", "slash"],
)
def test_a_default_agent_name_the_agent_tools_would_refuse_is_named_with_its_source(tmp_path: Path, name: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'default_agent = "{name}"\n')
    with pytest.raises(SettingsError) as raised:
        load_settings(config, environ={})
    assert str(raised.value) == (
        f"invalid setting 'default_agent' (from {config}): Value error, agent name {name[:120]!r} is not valid: "
        "use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit"
    )
    with pytest.raises(SettingsError, match=r"^invalid setting 'default_agent' \(from environment variable "):
        load_settings(environ={"ENGRAM_DEFAULT_AGENT": name})


def test_a_default_agent_name_the_agent_tools_accept_loads() -> None:
    assert load_settings(environ={"ENGRAM_DEFAULT_AGENT": "notes_2025.v1-a"}).default_agent == "notes_2025.v1-a"


def test_a_tool_profile_may_list_names_in_toml_or_with_commas_and_may_not_be_empty(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('tool_profile = ["memory", "agent_list"]\n')
    assert load_settings(config, environ={}).tool_profile == "memory,agent_list"
    assert load_settings(environ={"ENGRAM_TOOL_PROFILE": " memory , agent_list "}).tool_profile == "memory,agent_list"
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={"ENGRAM_TOOL_PROFILE": " , "})
    assert str(refused.value) == (
        "invalid setting 'tool_profile' (from environment variable ENGRAM_TOOL_PROFILE): Value error, give 'memory', "
        "'full', or tool names separated by commas"
    )
