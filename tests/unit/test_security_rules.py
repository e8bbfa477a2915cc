"""Every security rule against its documented intent (docs/security-rules.md: the rules
files are parsed and compared with the docs' tables), and the indexes every query needs.
No stack needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


_TOKEN = re.compile(r"match\s+(\S+)\s*\{|allow\s+([a-z,\s]+?)\s*:\s*if\s+([^;]+);|\{|\}")


def parse_rules(text: str) -> dict[str, dict[str, str]]:
    """{match path (joined, relative to the root match): {operation: condition}}."""
    text = re.sub(r"//[^\n]*", "", text)
    stack: list[str | None] = []
    rules: dict[str, dict[str, str]] = {}
    for m in _TOKEN.finditer(text):
        if m.group(1):
            stack.append(m.group(1))
        elif m.group(2):
            path = "/".join(p.strip("/") for p in stack if p)
            for op in (o.strip() for o in m.group(2).split(",")):
                ops = ["create", "update", "delete"] if op == "write" else [op]
                for o in ops:
                    rules.setdefault(path, {})[o] = " ".join(m.group(3).split())
        elif m.group(0) == "{":
            stack.append(None)
        else:
            stack.pop()
    assert not stack, "unbalanced braces"
    return rules


def functions_of(text: str) -> dict[str, str]:
    return {
        m.group(1): " ".join(m.group(2).split())
        for m in re.finditer(r"function\s+(\w+)\([^)]*\)\s*\{(.*?)\n\s*\}", text, re.S)
    }


def doc_table(section: str) -> dict[str, dict[str, str]]:
    doc = (ROOT / "docs" / "security-rules.md").read_text()
    body = doc.split(section, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            path = cells[0].strip("`")
            rows[path] = dict(zip(("read", "create", "update", "delete"), cells[1:5], strict=True))
    return rows


OWNER_MARKERS = ("isUser(", "ownsExisting()", "ownerOrMissing()", "storyboardOwner()", "newJob(")


def check_cell(path: str, op: str, cell: str, cond: str | None) -> None:
    who = cell.split(" (")[0]
    assert cond is not None, f"{path}: no rule for {op} (docs say {cell!r})"
    if who == "nobody":
        assert cond == "false", f"{path} {op}: docs say nobody, rule is {cond!r}"
    elif who == "anyone":
        assert cond == "true", f"{path} {op}: docs say anyone, rule is {cond!r}"
    elif who == "owner":
        assert any(m in cond for m in OWNER_MARKERS), f"{path} {op}: not an owner check: {cond!r}"
    elif who == "signed-in":
        assert "signedIn()" in cond or "isUser(" in cond, f"{path} {op}: {cond!r}"
    else:
        raise AssertionError(f"{path} {op}: unknown audience {who!r} in the docs")


@pytest.mark.parametrize(
    "rules_file, root, section",
    [
        (
            "firestore.rules",
            "databases/{database}/documents",
            "## Firestore: every rule and its intent",
        ),
        ("storage.rules", "b/{bucket}/o", "## Storage: every rule and its intent"),
    ],
)
def test_every_rule_matches_its_documented_intent(rules_file, root, section):
    rules = parse_rules((ROOT / rules_file).read_text())
    table = doc_table(section)
    assert table, "the docs table is empty"
    documented = {f"{root}/{p}".replace("/**", "/{path=**}") for p in table}
    declared = {p for p in rules if p != root}
    assert documented == declared, f"rules vs docs differ: {documented ^ declared}"
    for path, cells in table.items():
        declared_ops = rules[f"{root}/{path}".replace("/**", "/{path=**}")]
        for op, cell in cells.items():
            check_cell(path, op, cell, declared_ops.get(op))
        assert set(declared_ops) <= {"read", "create", "update", "delete"}


def test_money_and_status_are_never_client_writable():
    text = (ROOT / "firestore.rules").read_text()
    rules = parse_rules(text)
    base = "databases/{database}/documents"
    ledger_rules = rules[f"{base}/users/{{uid}}/ledger/{{entryId}}"]
    assert all(ledger_rules[o] == "false" for o in ("create", "update", "delete"))
    user = rules[f"{base}/users/{{uid}}"]
    for op in ("create", "update"):
        assert "hasOnly(['displayName', 'photoURL'])" in user[op] and "balance" not in user[op]
    creation = rules[f"{base}/creations/{{creationId}}"]
    assert creation["create"] == creation["update"] == "false"
    assert "resource.data.status in ['draft', 'failed']" in creation["delete"]
    fns = functions_of(text)
    assert "data.status == 'pending'" in fns["newJob"]
    assert "data.user_id == request.auth.uid" in fns["newJob"]
    assert "hasOnly(" in fns["newJob"] and "request.time" in fns["newJob"]
    for coll in (
        "image_generation_jobs",
        "video_generation_jobs",
        "multi_video_jobs",
        "composition_jobs",
    ):
        job = rules[f"{base}/{coll}/{{jobId}}"]
        assert job["create"].startswith("newJob(jobId,"), coll
        assert job["update"] == job["delete"] == "false", coll
        allowed = re.search(r"newJob\(jobId, \[([^\]]*)\]", job["create"])
        assert allowed and not {"progress", "error", "claimId", "provider"} & set(
            re.findall(r"'(\w+)'", allowed.group(1))
        ), coll
    always_true = {p for p, ops in rules.items() for o, c in ops.items() if c == "true"}
    assert always_true == {f"{base}/feed/{{creationId}}"}, "only the feed is public"


def test_uploads_are_limited_to_the_uploaders_path_type_and_size():
    text = (ROOT / "storage.rules").read_text()
    rules = parse_rules(text)
    uploads = rules["b/{bucket}/o/uploads/{uid}/{path=**}"]
    assert uploads["create"] == "isUser(uid) && allowedUpload()"
    body = functions_of(text)["allowedUpload"]
    assert "request.resource.size" in body and "request.resource.contentType" in body
    assert "size <= mib(1024)" in body and "size > 0" in body
    public = {p for p, ops in rules.items() if ops.get("read") == "true"}
    # public playback only: HLS streams and long-form previews (docs/security-rules.md)
    assert public == {"b/{bucket}/o/streams/{path=**}", "b/{bucket}/o/previews/{path=**}"}


def test_indexes_cover_the_drafts_query_and_every_swept_collection():
    import main  # the sweep's one explicit list

    swept = {coll.name: coll for coll in main.SWEPT_COLLECTIONS}
    data = json.loads((ROOT / "firestore.indexes.json").read_text())
    have = {
        (i["collectionGroup"], tuple((f["fieldPath"], f["order"]) for f in i["fields"]))
        for i in data["indexes"]
    }
    assert (
        "creations",
        (("userId", "ASCENDING"), ("status", "ASCENDING"), ("createdAt", "DESCENDING")),
    ) in have
    assert swept["creations"].created_field == "queuedAt"
    for name, coll in swept.items():
        assert (name, (("status", "ASCENDING"), ("leaseExpiresAt", "ASCENDING"))) in have, name
        if coll.pending:
            assert (name, (("status", "ASCENDING"), (coll.created_field, "ASCENDING"))) in have, (
                name
            )
    assert {"videos", "videoJobs", "creations", "image_generation_jobs"} <= set(swept)
