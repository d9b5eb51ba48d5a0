"""Access control on a public Space: every training endpoint obeys one rule, the annotation password
guards every read or write of study data, UI-only events are safe to call directly and name no server
path, model choices come from an allow-list, and no model folder's code is ever run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steerseg_core import access
from steerseg_core.annotation import flow, store
from steerseg_core.config import ServiceConfig, SteerSegConfig, service_from_env
from steerseg_core.errors import ModelLoadError
from ui.context import AppContext

from .test_annotation_store import _study

PASSWORD = "correct horse battery staple"


@pytest.fixture
def space(monkeypatch):
    """A public Space as Hugging Face runs it (SPACE_ID set), training not allowed."""
    monkeypatch.setenv("SPACE_ID", "someone/steerseg")
    for var in ("STEERSEG_ALLOW_TRAINING", "STEERSEG_ALLOWED_BACKBONES", "STEERSEG_ALLOWED_SAM2",
                "STEERSEG_ANNOTATE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


# --------------------------------------------------------------------------- 1. training control

def test_every_training_endpoint_obeys_the_same_rule(space, tmp_path):
    from ui import train

    runs_dir = tmp_path / "runs"
    (runs_dir / "run-a").mkdir(parents=True)
    (runs_dir / "run-a" / "status.json").write_text(json.dumps({"state": "stopped", "run_id": "run-a"}))
    ctx = AppContext(runs_dir=runs_dir, checkpoints_dir=tmp_path / "ckpt")
    before = sorted(p.name for p in runs_dir.rglob("*"))

    msg, _ = train.start_run(ctx, str(tmp_path), "x", 10, 5e-4, 4, "", "")
    assert "disabled on this public Space" in msg
    msg, _ = train.resume_run(ctx, "run-a")
    assert "Not resumed" in msg and "disabled on this public Space" in msg
    msg = train.stop_run(ctx, "run-a")
    assert "Not stopped" in msg and "disabled on this public Space" in msg
    value, msg = train.make_demo_data(ctx)
    assert "disabled on this public Space" in msg
    assert sorted(p.name for p in runs_dir.rglob("*")) == before  # nothing started, stopped or written

    space.setenv("STEERSEG_ALLOW_TRAINING", "1")  # allowed: the same handlers act
    assert "No run selected" in train.stop_run(ctx, None)


# --------------------------------------------------------------------------- 2. annotation password

def test_every_annotation_endpoint_requires_the_password(monkeypatch, tmp_path):
    from ui.annotate import AnnotateHandlers

    db = tmp_path / "a.db"
    sid = _study(db, n=3)
    store.record_judgement(db, sid, 0, "alice", "True", "alice's private note")
    monkeypatch.setenv("STEERSEG_ANNOTATE_PASSWORD", PASSWORD)
    common = {"cache_dir": tmp_path / "cache"}

    refusals = [
        lambda pw: flow.study_choices(db, pw),
        lambda pw: flow.open_study(db, sid, "mallory", password=pw, **common),
        lambda pw: flow.show_item(db, sid, "mallory", 1, password=pw, **common),
        lambda pw: flow.navigate(db, sid, "mallory", 0, "next", password=pw, **common),
        lambda pw: flow.navigate(db, sid, "mallory", 0, "jump", target=2, password=pw, **common),
        lambda pw: flow.statistics(db, sid, password=pw),
        lambda pw: flow.export(db, sid, tmp_path / "export", password=pw),
        lambda pw: flow.answer(db, sid, "mallory", 1, "False", password=pw, **common),
    ]
    for call in refusals:
        for wrong in (None, "", "guess"):
            with pytest.raises(access.AccessError, match="annotation password"):
                call(wrong)
    assert store.get_cursor(db, sid, "mallory") is None  # opening wrote no cursor row
    assert not (tmp_path / "export").exists()

    h = AnnotateHandlers(AppContext(db_path=db, cache_dir=tmp_path / "cache"))
    for out in (h.open("mallory", str(sid)), h.next("mallory", str(sid), 1), h.prev("mallory", str(sid), 2),
                h.next_unlabelled("mallory", str(sid), 1), h.jump("mallory", str(sid), 1, 2)):
        assert "annotation password" in out[-1] and "expression" not in str(out[:-1])
    md, chart = h.stats(str(sid), 0.5)
    assert "annotation password" in md and "alice" not in md and chart is None
    files, msg = h.export(str(sid), 0.5)
    assert files is None and "annotation password" in msg
    restored = h.restore(["mallory", str(sid)])  # the page-load event opens nothing without it
    assert restored[0] == "mallory" and "choices" not in repr(restored[1])
    assert "expression" not in repr(restored) and store.get_cursor(db, sid, "mallory") is None

    # with the password every endpoint works
    assert flow.open_study(db, sid, "bob", password=PASSWORD, **common).total == 3
    assert "alice" in {a.who for a in flow.statistics(db, sid, password=PASSWORD).annotators}
    assert "annotation password" not in h.open("bob", str(sid), PASSWORD)[-1]


# --------------------------------------------------------------------------- 3. UI-only events

def test_ui_only_training_events_reply_without_server_paths(monkeypatch, tmp_path):
    from ui import train

    monkeypatch.delenv("SPACE_ID", raising=False)
    runs_dir = tmp_path / "server-secret" / "runs"
    run = runs_dir / "run-b"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "failed", "run_id": "run-b",
                                                 "message": f"cannot read {tmp_path}/data/meta.json"}))
    (run / "process.log").write_text(f"loading {tmp_path}/server-secret/data/clip.mp4\nsaved {run}/ckpt\n")
    ctx = AppContext(runs_dir=runs_dir, checkpoints_dir=tmp_path / "ckpt")
    status, _, _, log = train.watch_run(ctx, "run-b")
    for text in (status, log):
        assert str(tmp_path) not in text and "server-secret/" not in text, text
    assert "clip.mp4" in log

    value, msg = train.make_demo_data(ctx)  # the demo-data writer names the set, never its path
    assert value == train.DEMO_DATA and str(tmp_path) not in msg and str(tmp_path) not in value
    assert (runs_dir / "synthetic-data" / "meta_expressions.json").exists()


# --------------------------------------------------------------------------- 4. model allow-lists

def test_model_choices_come_from_an_allow_list_on_a_space(space, tiny_models, tmp_path):
    from ui.segment import build_config

    cfg = SteerSegConfig()
    cfg.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    cfg.segment.sam2 = str(tiny_models / "sam2")
    ctx = AppContext(config=cfg, checkpoints_dir=tmp_path / "ckpt")

    def build(backbone: str, sam2: str) -> SteerSegConfig:
        return build_config(ctx, backbone, "", True, False, 0.3, 2, 2, "", 0.7, sam2)

    # the configured models, the local tiny models beside them, the defaults: allowed
    assert build(str(tiny_models / "qwen2_vl"), "tiny").grounding.backbone == str(tiny_models / "qwen2_vl")
    assert build("Qwen/Qwen2-VL-7B-Instruct", str(tiny_models / "sam2")).segment.sam2 == str(tiny_models / "sam2")
    for backbone, sam2 in (("someone/huge-model-70B", "tiny"), ("/etc", "tiny"),
                           ("Qwen/Qwen2-VL-7B-Instruct", "facebook/sam2.1-hiera-large"),
                           ("Qwen/Qwen2-VL-7B-Instruct", "/root/weights.pt")):
        with pytest.raises(access.AccessError, match="not offered on this Space"):
            build(backbone, sam2)
    space.setenv("STEERSEG_ALLOWED_BACKBONES", "someone/huge-model-70B")  # the list is configurable
    assert build("someone/huge-model-70B", "tiny").grounding.backbone == "someone/huge-model-70B"
    with pytest.raises(access.AccessError):
        build("Qwen/Qwen2-VL-7B-Instruct", "tiny")
    assert service_from_env().allowed_backbones == ("someone/huge-model-70B",)

    space.delenv("SPACE_ID")  # off a Space the user runs the server: anything goes
    assert build("someone/other", "facebook/sam2.1-hiera-large").grounding.backbone == "someone/other"


def test_training_backbone_obeys_the_allow_list(space, tmp_path):
    from ui import train

    space.setenv("STEERSEG_ALLOW_TRAINING", "1")
    ctx = AppContext(runs_dir=tmp_path / "runs", checkpoints_dir=tmp_path / "ckpt")
    msg, _ = train.start_run(ctx, str(tmp_path), "someone/huge-model-70B", 10, 5e-4, 4, "", "")
    assert "not offered on this Space" in msg and not (tmp_path / "runs").exists()


def test_access_rules_take_an_explicit_service_config():
    svc = ServiceConfig(space_id="a/b", annotate_password="pw")
    assert access.password_required(svc) and not svc.training_allowed
    access.check_password("pw", svc)
    with pytest.raises(access.AccessError):
        access.check_password("nope", svc)
    with pytest.raises(access.AccessError):
        access.check_training(svc)
    access.check_training(ServiceConfig())  # not a Space


# --------------------------------------------------------------------------- 5. remote code

def test_a_model_folder_with_custom_code_is_never_run(tmp_path, monkeypatch):
    from steerseg_core.grounding.lvlm import load_adapter

    folder = tmp_path / "evil"
    folder.mkdir()
    marker = tmp_path / "code-ran"
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evilvl", "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "evil_code.EvilConfig", "AutoModelForImageTextToText": "evil_code.EvilModel"}}))
    (folder / "evil_code.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evilvl'\n")
    asked: list[str] = []

    def answer_yes(prompt: str = "") -> str:  # a person at the terminal who says yes
        asked.append(prompt)
        return "y"

    monkeypatch.setattr("builtins.input", answer_yes)
    with pytest.raises(ModelLoadError) as err:
        load_adapter(str(folder), device="cpu")
    assert not asked and not marker.exists()
    assert "evilvl" in str(err.value) or "evil" in str(err.value)


def test_every_transformers_load_refuses_remote_code():
    """Source check: each ``from_pretrained`` in the library passes trust_remote_code=False."""
    root = Path(__file__).resolve().parents[1] / "steerseg_core"
    for path in root.rglob("*.py"):
        if "testing" in path.parts:
            continue
        text = path.read_text()
        for chunk in text.split(".from_pretrained(")[1:]:
            call = chunk[: chunk.find(")") + 1]
            assert "trust_remote_code=False" in call, (path, call)


# --------------------------------------------------------------------------- 3. raw HTTP, every event

def _call_by_index(url: str, fn_index: int, data: list, timeout: float = 60.0) -> str:
    """Call one event of a launched app the way a raw HTTP client can (queue join by fn_index, no
    page, no gradio_client); the text of every message the server sent back."""
    import uuid

    import httpx

    session = uuid.uuid4().hex
    joined = httpx.post(f"{url}gradio_api/queue/join", timeout=30,
                        json={"data": data, "fn_index": fn_index, "session_hash": session, "trigger_id": None})
    if joined.status_code >= 400:
        return joined.text
    out = []
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session},
                      timeout=timeout) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                out.append(line)
                if '"process_completed"' in line or '"close_stream"' in line:
                    break
    return "\n".join(out)


def test_every_event_called_by_index_over_raw_http_on_a_space(space, tmp_path):
    """A Space with a password: every event of the app — named, private or hidden — is called by
    index with empty inputs. None may write study data or training files, and no reply may carry a
    server path."""
    import app

    space.setenv("STEERSEG_ANNOTATE_PASSWORD", PASSWORD)
    root = tmp_path / "server-secret-root"
    db = root / "a.db"
    sid = _study(db, n=2)
    ctx = AppContext(config=SteerSegConfig(), db_path=db, checkpoints_dir=root / "ckpt", runs_dir=root / "runs",
                     cache_dir=root / "cache")
    (root / "runs").mkdir()
    demo = app.create_app(ctx)
    app.configure_queue(demo, ctx)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                            ssr_mode=False, show_error=False)
    try:
        called, replies = 0, []
        for index, fn in demo.fns.items():
            if fn.fn is None or fn.api_name in ("segment", "apply_clicks"):  # model events: tested elsewhere
                continue
            inputs = []
            for block in fn.inputs:  # a name in text boxes, a listed choice in drop-downs, else nothing
                name = type(block).__name__
                choices = [c[1] if isinstance(c, (list, tuple)) else c for c in (getattr(block, "choices", None) or [])]
                inputs.append("mallory" if name == "Textbox" else (choices[0] if choices else None)
                              if name == "Dropdown" else None)
            reply = _call_by_index(url, index, inputs)
            replies.append(reply)
            called += 1
            assert str(root) not in reply and str(tmp_path) not in reply, (fn.name, reply[:500])
        assert called >= 15
        assert sum("disabled on this public Space" in r for r in replies) >= 4  # start, stop, resume, demo
        assert sum("annotation password" in r for r in replies) >= 8  # open, nav, stats, export, ...
    finally:
        demo.close()
    assert store.get_cursor(db, sid, "mallory") is None and store.get_judgements(db, sid) == []
    assert sorted(p.name for p in (root / "runs").iterdir()) == []  # no demo data, no run
