"""Reading Claude.ai, ChatGPT and JSON Lines chat exports into conversations for recall memory."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engram.storage.errors import InvalidInputError
from engram.tools.ingest.chat_exports import ExportFormat, ImportedConversation, detect_format, read_export

DATA = Path(__file__).parent / "data" / "imports"
CLAUDE = DATA / "claude.json"
CHATGPT = DATA / "chatgpt.json"
JSONL = DATA / "chat.jsonl"


def texts(conversation: ImportedConversation) -> list[str]:
    return [message.text for message in conversation.messages]


def test_claude_export_reads_text_only_and_content_block_messages() -> None:
    old, new = read_export(CLAUDE)
    assert (old.key, old.title, old.created_at) == (
        "c0a1e3f2-0000-4000-8000-000000000001",
        "Steeping green tea",
        datetime(2024, 3, 1, 9, 59, 58, tzinfo=UTC),
    )
    assert texts(old) == ["How long should I steep green tea?", "About two minutes, with water around 80°C."]
    assert [(message.key, message.role) for message in old.messages] == [("m-0001", "user"), ("m-0002", "assistant")]
    assert old.messages[1].created_at == datetime(2024, 3, 1, 10, 0, 5, 123000, tzinfo=UTC)
    assert new.title == ""
    assert texts(new)[:2] == [
        "When does the Kew Gardens glasshouse open?",
        "Let me look that up.\n\nIt opens at 10:00.",
    ]


def test_claude_tool_use_becomes_a_tool_call() -> None:
    _, conversation = read_export(CLAUDE)
    answer, calendar = conversation.messages[1:3]
    assert answer.content["tool_calls"] == [
        {"id": "toolu_01", "name": "web_search", "arguments": {"query": "Kew Gardens glasshouse opening hours"}}
    ]
    assert "not supported" not in answer.text
    assert calendar.content["tool_calls"] == [
        {"id": None, "name": "calendar_add", "arguments": {"title": "Kew", "at": "10:00"}}
    ]
    assert calendar.text == 'calendar_add({"title": "Kew", "at": "10:00"})'


def test_claude_messages_without_text_or_tool_calls_are_skipped() -> None:
    old, new = read_export(CLAUDE)
    keys = [message.key for conversation in (old, new) for message in conversation.messages]
    assert "m-0003" not in keys  # empty text
    assert "m-0104" not in keys  # thinking only
    assert len(keys) == 5


def test_claude_attachments_are_listed_by_name() -> None:
    old, new = read_export(CLAUDE)
    assert old.messages[0].content == {"text": "How long should I steep green tea?", "attachments": ["tea-notes.txt"]}
    assert new.messages[0].content["attachments"] == ["map.png"]
    assert "attachments" not in old.messages[1].content


def test_chatgpt_export_follows_the_displayed_branch() -> None:
    cat, _ = read_export(CHATGPT)
    assert [message.key for message in cat.messages] == ["u1", "a1", "u2", "a2", "t1", "a3"]
    assert "Something longer?" not in texts(cat)
    assert "Sir Pounce-a-lot." not in texts(cat)


def test_chatgpt_hidden_system_message_is_skipped() -> None:
    cat, _ = read_export(CHATGPT)
    assert all(message.role != "system" for message in cat.messages)
    assert "You are ChatGPT." not in texts(cat)


def test_chatgpt_multimodal_parts_keep_text_and_note_images() -> None:
    cat, _ = read_export(CHATGPT)
    edited = cat.messages[2]
    assert edited.text == "[image]\n\nHere she is. What name suits her?"
    assert edited.content["attachments"] == ["cat.jpg"]


def test_chatgpt_tool_messages_keep_the_tool_name_and_code_keeps_its_text() -> None:
    cat, _ = read_export(CHATGPT)
    search, result = cat.messages[3:5]
    assert (search.role, search.text) == ("assistant", 'search("orange cat names")')
    assert (result.role, result.content) == (
        "tool",
        {"text": "Popular orange cat names: Clementine, Marmalade.", "name": "browser"},
    )


def test_chatgpt_epoch_times_become_utc_datetimes() -> None:
    cat, ping = read_export(CHATGPT)
    assert cat.created_at == datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert cat.messages[0].created_at == datetime(2024, 5, 1, 10, 0, 1, 500000, tzinfo=UTC)
    assert cat.messages[3].created_at is None  # create_time null stays unknown
    assert (cat.key, cat.title) == ("6631f2a0-1111-4000-8000-00000000cafe", "Naming the cat")
    assert (ping.key, ping.title, texts(ping)) == ("6631f2a0-2222-4000-8000-00000000beef", "", ["ping"])


def test_jsonl_groups_lines_into_conversations_in_order_of_first_appearance() -> None:
    standup, trip = read_export(JSONL)
    assert (standup.key, standup.title) == ("standup-2024-05-02", "")
    assert texts(standup) == ["Yesterday I fixed the importer.", "Noted. Anything blocking you?", "ok", "ok"]
    assert standup.created_at == datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
    assert [(message.role, message.created_at) for message in trip.messages] == [
        ("user", datetime(2024, 5, 2, 9, 30, tzinfo=UTC)),  # +02:00 converted
        ("tool", datetime(2024, 5, 2, 9, 31, tzinfo=UTC)),  # no zone: UTC
    ]
    assert standup.messages[2].created_at is None


def test_jsonl_repeated_line_gets_a_numbered_key() -> None:
    standup, _ = read_export(JSONL)
    first, second = standup.messages[2:4]
    assert re.fullmatch(r"[0-9a-f]{32}", first.key)
    assert second.key == f"{first.key}-2"
    assert len({message.key for message in standup.messages}) == 4


@pytest.mark.parametrize("path", [CLAUDE, CHATGPT, JSONL], ids=["claude", "chatgpt", "jsonl"])
def test_keys_are_stable_across_two_reads(path: Path) -> None:
    assert read_export(path) == read_export(path)


def test_jsonl_keys_survive_appending_to_the_file(tmp_path: Path) -> None:
    grown = tmp_path / "chat.jsonl"
    extra = {"conversation": "standup-2024-05-02", "role": "user", "content": "ok"}
    grown.write_text(JSONL.read_text() + json.dumps(extra) + "\n")
    before = {c.key: [m.key for m in c.messages] for c in read_export(JSONL)}
    after = {c.key: [m.key for m in c.messages] for c in read_export(grown)}
    assert after["trip"] == before["trip"]
    assert after["standup-2024-05-02"][:4] == before["standup-2024-05-02"]
    assert after["standup-2024-05-02"][4] == f"{before['standup-2024-05-02'][2]}-3"


@pytest.mark.parametrize("fixture", [CLAUDE, CHATGPT], ids=["claude", "chatgpt"])
def test_zip_export_is_read_from_its_conversations_json(tmp_path: Path, fixture: Path) -> None:
    archive = tmp_path / "data-2025-01-10-batch-0000.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("users.json", "[]")
        zipped.writestr("conversations.json", fixture.read_text())
    assert read_export(archive) == read_export(fixture)
    assert detect_format(archive) == fixture.stem


def test_zip_without_conversations_json_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("chat.html", "<html></html>")
    with pytest.raises(
        InvalidInputError,
        match=r"^export\.zip holds no conversations\.json; pass the \.zip the service emailed, or the extracted "
        r"conversations\.json$",
    ):
        read_export(archive)


def test_a_zip_member_over_the_size_cap_is_refused_naming_it_its_size_and_the_cap(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        with zipped.open("data/conversations.json", "w") as member:  # 250 MB of spaces: a few hundred kB zipped
            for _ in range(250):
                member.write(b" " * 1_000_000)
            member.write(b"[]")
    message = (
        "export.zip/data/conversations.json is 250000002 bytes; exports over 250000000 bytes are not imported: "
        "split it into smaller files and import each one"
    )
    for read in (read_export, detect_format):
        with pytest.raises(InvalidInputError) as raised:
            read(archive)
        assert str(raised.value) == message


def test_a_file_over_the_size_cap_is_refused_naming_its_size_and_the_cap(tmp_path: Path) -> None:
    export = tmp_path / "conversations.json"
    with export.open("wb") as sparse:  # no data written: reading it would give 250 MB of NUL bytes
        sparse.truncate(250_000_001)
    with pytest.raises(InvalidInputError) as raised:
        read_export(export)
    assert str(raised.value) == (
        "conversations.json is 250000001 bytes; exports over 250000000 bytes are not imported: split it into "
        "smaller files and import each one"
    )


def test_a_zip_whose_header_understates_its_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    content = CLAUDE.read_bytes()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("conversations.json", content)
    data = bytearray(archive.read_bytes())
    central = data.index(b"PK\x01\x02")  # the central directory entry: its uncompressed size is at offset 24
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    assert zipfile.ZipFile(archive).getinfo("conversations.json").file_size == 10 < len(content)
    with pytest.raises(InvalidInputError, match=r"^export\.zip is not a readable zip archive \(Bad CRC-32"):
        read_export(archive)


@pytest.mark.parametrize(
    ("path", "expected"),
    [(CLAUDE, "claude"), (CHATGPT, "chatgpt"), (JSONL, "jsonl")],
    ids=["claude", "chatgpt", "jsonl"],
)
def test_detect_format_recognises_each_export(path: Path, expected: ExportFormat) -> None:
    assert detect_format(path) == expected


def test_json_lines_under_another_name_need_the_format_flag(tmp_path: Path) -> None:
    misnamed = tmp_path / "chat.json"
    misnamed.write_text(JSONL.read_text())
    with pytest.raises(InvalidInputError, match=r"chat\.json is not valid JSON .* use --format jsonl"):
        read_export(misnamed)
    assert read_export(misnamed, "jsonl") == read_export(JSONL)


def test_explicit_format_skips_detection(tmp_path: Path) -> None:
    log = tmp_path / "chat.log"
    log.write_text('{"conversation": "c", "content": "hi", "role": "user"}\n')
    assert texts(read_export(log, "jsonl")[0]) == ["hi"]
    with pytest.raises(
        InvalidInputError,
        match=r"^chat\.jsonl is not valid JSON \(line 2, column 1: Extra data\); pass the conversations\.json from "
        r"the export; for JSON Lines name the file \.jsonl or use --format jsonl$",
    ):
        read_export(JSONL, "claude")


def test_unknown_json_asks_for_the_format_flag(tmp_path: Path) -> None:
    other = tmp_path / "notes.json"
    other.write_text('[{"messages": []}]')
    with pytest.raises(InvalidInputError, match=re.escape("cannot tell the format of notes.json")) as raised:
        detect_format(other)
    assert "use --format claude|chatgpt|jsonl" in str(raised.value)


def test_an_empty_export_has_no_conversations(tmp_path: Path) -> None:
    empty = tmp_path / "conversations.json"
    empty.write_text("[]")
    assert read_export(empty) == []


def test_nul_characters_are_stripped(tmp_path: Path) -> None:
    log = tmp_path / "chat.jsonl"
    line = {"conversation": "c\u0000", "role": "assistant", "content": "nul\u0000here"}
    log.write_text(json.dumps(line) + "\n")
    (conversation,) = read_export(log)
    assert conversation.key == "c"
    assert conversation.messages[0].text == "nulhere"
    assert conversation.messages[0].content == {"text": "nulhere"}


def claude_export(**message: object) -> str:
    base: dict[str, object] = {"uuid": "m1", "sender": "human", "text": "hi", "created_at": "2024-01-01T00:00:00Z"}
    return json.dumps([{"uuid": "c1", "name": "t", "chat_messages": [{**base, **message}]}])


def chatgpt_export(current_node: str = "n1", **message: object) -> str:
    base = {"id": "n1", "author": {"role": "user"}, "content": {"content_type": "text", "parts": ["hi"]}}
    node: dict[str, object] = {"id": "n1", "parent": None, "children": [], "message": {**base, **message}}
    return json.dumps([{"id": "g1", "title": "t", "mapping": {"n1": node}, "current_node": current_node}])


MALFORMED = {
    "not json": ("export.json", "{not json", "export.json is not valid JSON (line 1, column 2"),
    "json object": ("export.json", '{"chat_messages": []}', "export.json: expected a JSON array of conversations"),
    "conversation not object": ("export.json", '[{"uuid": "c1", "chat_messages": []}, 7]', "export.json[1]: expected"),
    "claude missing uuid": ("export.json", '[{"chat_messages": []}]', "export.json[0]: 'uuid' is missing"),
    "claude messages not list": (
        "export.json",
        '[{"uuid": "c1", "chat_messages": {}}]',
        "export.json[0] (uuid 'c1'): 'chat_messages' must be a list, not an object",
    ),
    "claude bad sender": (
        "export.json",
        claude_export(sender="bot"),
        "export.json[0] (uuid 'c1'), chat_messages[0] (uuid 'm1'): 'sender' must be 'human' or 'assistant', not 'bot'",
    ),
    "claude bad timestamp": (
        "export.json",
        claude_export(created_at="yesterday"),
        "chat_messages[0] (uuid 'm1'): 'created_at' is not a valid timestamp: 'yesterday'",
    ),
    "claude tool_use without name": (
        "export.json",
        claude_export(content=[{"type": "tool_use", "input": {}}]),
        "chat_messages[0] (uuid 'm1'), content[0]: 'name' is missing",
    ),
    "chatgpt missing author": (
        "conversations.json",
        chatgpt_export(author=None),
        "conversations.json[0] (id 'g1'), mapping['n1']: 'author' is missing",
    ),
    "chatgpt bad role": (
        "conversations.json",
        chatgpt_export(author={"role": "critic"}),
        "mapping['n1']: 'author.role' must be one of user, assistant, tool, system, not 'critic'",
    ),
    "chatgpt bad create_time": (
        "conversations.json",
        chatgpt_export(create_time=1e20),
        "mapping['n1']: 'create_time' is not a valid timestamp: 1e+20",
    ),
    "chatgpt current_node unknown": (
        "conversations.json",
        chatgpt_export(current_node="gone"),
        "conversations.json[0] (id 'g1'): 'current_node' 'gone', which is not a key of 'mapping'",
    ),
    "chatgpt dangling parent": (
        "conversations.json",
        json.dumps([{"id": "g1", "mapping": {"n1": {"parent": "n0"}}, "current_node": "n1"}]),
        "(id 'g1'): node 'n1' names parent 'n0', which is not a key of 'mapping'",
    ),
    "chatgpt parent cycle": (
        "conversations.json",
        json.dumps([{"id": "g1", "mapping": {"a": {"parent": "b"}, "b": {"parent": "a"}}, "current_node": "a"}]),
        "(id 'g1'): the parent links through mapping['a'] form a cycle",
    ),
    "corrupt zip": ("export.zip", "not a zip", "export.zip is not a readable zip archive"),
    "jsonl bad role": (
        "chat.jsonl",
        '{"conversation": "c", "role": "user", "content": "a"}\n{"conversation": "c", "role": "bot", "content": "b"}',
        "line 2 of chat.jsonl: 'role' must be one of user, assistant, tool, system, not 'bot'",
    ),
    "jsonl not json": (
        "chat.jsonl",
        '{"conversation": "c", "role": "user", "content": "a"}\n\n{"conversation": "c",\n',
        "line 3 of chat.jsonl: not valid JSON",
    ),
    "jsonl missing conversation": (
        "chat.jsonl",
        '{"role": "user", "content": "a"}',
        "line 1 of chat.jsonl: 'conversation' is missing",
    ),
    "jsonl empty conversation": (
        "chat.jsonl",
        '{"conversation": " ", "role": "user", "content": "a"}',
        "line 1 of chat.jsonl: 'conversation' is empty",
    ),
    "jsonl content not text": (
        "chat.jsonl",
        '{"conversation": "c", "role": "user", "content": ["a"]}',
        "line 1 of chat.jsonl: 'content' must be a string, not a list",
    ),
    "jsonl line not object": ("chat.jsonl", '["c", "user", "a"]', "line 1 of chat.jsonl: expected a JSON object"),
    "jsonl bad timestamp": (
        "chat.jsonl",
        '{"conversation": "c", "role": "user", "content": "a", "created_at": "2024-13-01"}',
        "line 1 of chat.jsonl: 'created_at' is not a valid timestamp: '2024-13-01'",
    ),
}


@pytest.mark.parametrize(("name", "text", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_names_the_place(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=re.escape(expected)):
        read_export(path)


def test_a_missing_file_is_an_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"cannot read .*absent\.json: No such file"):
        read_export(tmp_path / "absent.json")


def test_text_that_is_not_utf8_is_an_invalid_input(tmp_path: Path) -> None:
    latin = tmp_path / "conversations.json"
    latin.write_bytes('[{"name": "café"}]'.encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"conversations\.json is not UTF-8 text"):
        read_export(latin)
