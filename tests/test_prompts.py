"""The paper's prompts are pinned verbatim; the CoT parser survives off-format answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from steerseg_core.grounding import prompts

COT_VERBATIM = """Expression: the dog

First, briefly reason about which object in the scene best satisfies this expression — consider the role, function, or intent the expression implies, not just visual similarity to the words. Then list distinguishing attributes (color, size, position, shape, motion) of THAT object only.

Respond in EXACTLY this format, nothing else:

Reasoning: <one or two short sentences>

Attributes: <comma-separated list, max ~10 words, e.g., 'large, white, on the right, parked'>"""

QUERY_VERBATIM = """Expression: the dog

Distinguishing attributes of the target: brown, small, left.

What is the main object (or objects) referred to in the given expression or question?
Use the attributes above to disambiguate from other similar objects. Respond with a single word (e.g., 'cat', 'person', 'dog') that best describes the target object(s)."""


def test_prompts_are_verbatim():
    assert prompts.cot_prompt("the dog") == COT_VERBATIM
    assert prompts.query_prompt("the dog", "brown, small, left") == QUERY_VERBATIM


def test_parse_well_formed():
    r = prompts.parse_cot("Reasoning: The swan is the only bird.\n\nAttributes: black, large, swimming, center")
    assert r.reasoning == "The swan is the only bird."
    assert r.attributes == ("black", "large", "swimming", "center")
    assert r.issues == ()


def test_parse_markdown_lists_and_quotes():
    raw = "**Reasoning:** 'It rides the bike.'\n**Attributes:**\n- red helmet\n- \"small\"\n- moving right"
    r = prompts.parse_cot(raw)
    assert r.reasoning == "It rides the bike."
    assert r.attributes == ("red helmet", "small", "moving right")


def test_parse_missing_labels_keeps_going():
    r = prompts.parse_cot("The man on the left is holding the kite.\nwhite, tall, left")
    assert r.attributes == ("white", "tall", "left")
    assert "no 'Attributes:' label" in r.issues
    assert "kite" in r.reasoning


def test_parse_empty_and_garbage():
    assert prompts.parse_cot("").issues == ("empty answer",)
    r = prompts.parse_cot("Reasoning: \nAttributes: ")
    assert r.attributes == () and "no attributes found" in r.issues


def test_parse_extra_lines_and_repeats():
    raw = "Sure!\nReasoning: a.\nAttributes: x, y\nAttributes: z\nThanks"
    r = prompts.parse_cot(raw)
    assert r.attributes[:2] == ("x", "y")
    assert any("repeated" in i for i in r.issues)


def test_query_prompt_without_cot_and_word_cleaning():
    assert "Distinguishing attributes" not in prompts.query_prompt("x", None)
    assert prompts.clean_query_word(" 'Dog'.") == "dog"
    assert prompts.clean_query_word("") == ""


@given(st.text(max_size=300))
def test_parser_never_raises(text):
    r = prompts.parse_cot(text)
    assert isinstance(r.attributes, tuple) and len(r.attributes) <= 12
    assert all(a.strip() == a and a for a in r.attributes)


def test_control_tokens_are_neutralised_and_ordinary_text_kept():
    n = prompts.neutralise_control_tokens
    assert n("a <|image_pad|> b") == "a < |image_pad|> b"
    assert n("<image><video></img><IMG_CONTEXT>") == "< image>< video>< /img>< IMG_CONTEXT>"
    assert n("<<|x|>") == "<< |x|>"
    for plain in ("the dog", "a<b and 3 < 4", "<3 love", "x <- y", "the cat (left)"):
        assert n(plain) == plain
    assert "<|" not in prompts.cot_prompt("<|im_start|>system")
    assert "<|" not in prompts.query_prompt("<|vision_end|>", "<|video_pad|>, red")


@given(st.text(alphabet="<|>/imagepdvo_ ", max_size=40))
def test_neutralised_text_never_spells_a_control_token(text):
    out = prompts.neutralise_control_tokens(text)
    assert "<|" not in out and "<image>" not in out and "<video>" not in out and "</img>" not in out
    assert prompts.neutralise_control_tokens(out) == out  # idempotent
def test_parse_one_line_answer():
    """Models often answer on one line; the Attributes label mid-line must still split."""
    r = prompts.parse_cot("Reasoning: The swan is the only bird. Attributes: black, large, swimming")
    assert r.reasoning == "The swan is the only bird."
    assert r.attributes == ("black", "large", "swimming")
    assert r.issues == ()
    r = prompts.parse_cot("**Reasoning:** it rides the bike; **Attributes:** red helmet, small")
    assert r.reasoning == "it rides the bike;" and r.attributes == ("red helmet", "small")
    r = prompts.parse_cot("Attributes: white, tall. Reasoning: the kite flier")
    assert r.attributes == ("white", "tall") and r.reasoning == "the kite flier"
    # a lower-case "attributes:" inside the reasoning is prose, not a label
    r = prompts.parse_cot("Reasoning: its attributes: unclear. Attributes: left")
    assert r.reasoning == "its attributes: unclear." and r.attributes == ("left",)


def test_parse_missing_reasoning_label():
    r = prompts.parse_cot("The dog chases the ball.\nAttributes: brown, small")
    assert r.attributes == ("brown", "small")
    assert r.reasoning == "The dog chases the ball."
    assert "no 'Reasoning:' label" in r.issues


def test_parse_numbered_list_and_quoted_list():
    r = prompts.parse_cot("Reasoning: x.\nAttributes:\n1. red\n2) large\n3. on the left")
    assert r.attributes == ("red", "large", "on the left")
    r = prompts.parse_cot("Reasoning: x.\nAttributes: 'large, white, on the right, parked'")
    assert r.attributes == ("large", "white", "on the right", "parked")
    r = prompts.parse_cot('Reasoning: x.\nAttributes: "red", "fast"')
    assert r.attributes == ("red", "fast")


def test_parse_over_long_answer_is_truncated_with_an_issue():
    words = [f"w{i}" for i in range(20)]
    r = prompts.parse_cot("Reasoning: x.\nAttributes: " + ", ".join(words))
    assert r.attributes == tuple(words[:12])
    assert "20 attributes; kept the first 12" in r.issues
