"""The Annotate tab in a launched app, driven through gradio_client: the whole flow, and eight
annotators answering concurrently without losing or duplicating anything."""

from __future__ import annotations

import threading

import pytest

from steerseg_core.annotation import create_study, generate_attributes, store
from steerseg_core.config import SteerSegConfig
from ui.context import AppContext

from .test_annotation_helpers import colour_cot, launch_local, make_reasonvos

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def app(tmp_path_factory, data_dir):
    from ui.annotate import ANNOTATE_SHORTCUTS_JS, build_annotate_tab

    base = tmp_path_factory.mktemp("app")
    db = base / "a.db"
    st = create_study(db, make_reasonvos(base / "ReasonVOS"), name="app study", n=6, seed=2)
    generate_attributes(db, st.id, colour_cot, backbone="colour")
    ctx = AppContext(config=SteerSegConfig(), db_path=db, cache_dir=base / "gif_cache")
    with gr.Blocks() as demo, gr.Tab("Annotate"):
        build_annotate_tab(ctx)
    url = launch_local(demo, js=ANNOTATE_SHORTCUTS_JS)
    try:
        yield url, db, st
    finally:
        demo.close()


def _client(url: str):
    return gradio_client.Client(url, verbose=False, download_files=False)


def test_full_flow_through_the_api(app):
    url, db, st = app
    c = _client(url)
    names = set(c.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/annotate_studies", "/annotate_open", "/annotate_true", "/annotate_false", "/annotate_skip",
            "/annotate_prev", "/annotate_next", "/annotate_next_unlabelled", "/annotate_jump",
            "/annotate_stats", "/annotate_export"} <= names
    sid = str(st.id)
    out = c.predict("flow-tester", sid, api_name="/annotate_open")
    assert out[0]["path"].endswith(".gif") and "Item 1 of 6" in out[2] and out[10] == 1
    out = c.predict("flow-tester", "", sid, 1, "", None, api_name="/annotate_true")
    assert (out[10], out[11]) == (2, "saved True for item 1") and "1 of 6 labelled" in out[8]
    out = c.predict("flow-tester", "", sid, 2, "a note", None, api_name="/annotate_false")
    out = c.predict("flow-tester", sid, out[10], api_name="/annotate_prev")
    assert out[10] == 2 and out[5] == "Your answer: **False**" and out[6] == "a note"
    out = c.predict("flow-tester", "", sid, 2, "", None, api_name="/annotate_skip")  # revise
    out = c.predict("flow-tester", sid, out[10], 6, api_name="/annotate_jump")
    assert out[10] == 6
    out = c.predict("flow-tester", sid, 6, api_name="/annotate_next_unlabelled")
    assert out[10] == 3
    assert c.predict("flow-tester", sid, 3, api_name="/annotate_next")[10] == 4
    # Coming back later (a new session) resumes at the same place.
    assert _client(url).predict("flow-tester", sid, api_name="/annotate_open")[10] == 4
    md, _plot = c.predict(sid, 0.5, api_name="/annotate_stats")
    assert "| flow-tester | 2 | 1 | 0 | 1 |" in md
    files, msg = c.predict(sid, 0.5, api_name="/annotate_export")
    assert msg == "exported 5 files" and len(files) == 5
    mine = store.get_judgements(db, st.id, annotator="flow-tester")
    assert sorted((j.sample_id, j.label, j.revision) for j in mine)[1][1:] == ("Skip", 2)


@pytest.mark.slow
def test_eight_clients_answer_concurrently(app):
    """8 annotators × 36 answers (6 items × 6 rounds, labels changing every round) = 288 requests."""
    url, db, st = app
    sid = str(st.id)
    names = [f"client-{k}" for k in range(8)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(names))
    endpoints = ("/annotate_true", "/annotate_false", "/annotate_skip")

    def label_of(k: int, rnd: int, pos: int) -> int:
        return (k + rnd + pos) % 3

    def work(k: int, name: str) -> None:
        try:
            c = _client(url)
            barrier.wait()
            for rnd in range(6):
                for pos in range(6):
                    out = c.predict(name, "", sid, pos + 1, f"round {rnd}", None,
                                    api_name=endpoints[label_of(k, rnd, pos)])
                    assert out[11].startswith(f"saved {('True', 'False', 'Skip')[label_of(k, rnd, pos)]}"), out[11]
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k, n)) for k, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    judgements = [j for j in store.get_judgements(db, st.id) if j.annotator in names]
    assert len(judgements) == 8 * 6
    positions = {s.id: s.position for s in store.get_samples(db, st.id)}
    for j in judgements:
        k, pos = names.index(j.annotator), positions[j.sample_id]
        assert (j.label, j.note, j.revision) == (("True", "False", "Skip")[label_of(k, 5, pos)], "round 5", 6)
    history = [h for h in store.get_history(db, st.id) if h["annotator"] in names]
    assert len(history) == 8 * 36
    assert len({(h["judgement_id"], h["revision"]) for h in history}) == 8 * 36
