"""The paper's two prompts, verbatim, and a forgiving parser for the chain-of-thought answer.

The CoT answer comes from a generative model and is often off-format; the parser never raises,
records what it could not parse in ``CoTResult.issues`` and always yields usable attributes text
so the query step still runs.
"""

from __future__ import annotations

import re

from ..types import CoTResult

PROMPT_VERSION = "steerseg-v1"

COT_TEMPLATE = (
    "Expression: {sent}\n\n"
    "First, briefly reason about which object in the scene best satisfies this expression — "
    "consider the role, function, or intent the expression implies, not just visual similarity to "
    "the words. Then list distinguishing attributes (color, size, position, shape, motion) of THAT "
    "object only.\n\n"
    "Respond in EXACTLY this format, nothing else:\n\n"
    "Reasoning: <one or two short sentences>\n\n"
    "Attributes: <comma-separated list, max ~10 words, e.g., 'large, white, on the right, parked'>"
)

QUERY_TEMPLATE = (
    "Expression: {sent}\n\n"
    "Distinguishing attributes of the target: {attrs}.\n\n"
    "What is the main object (or objects) referred to in the given expression or question?\n"
    "Use the attributes above to disambiguate from other similar objects. Respond with a single word "
    "(e.g., 'cat', 'person', 'dog') that best describes the target object(s)."
)

# Without the CoT step (ablation) the query prompt keeps its shape with no attributes line.
QUERY_TEMPLATE_NO_COT = (
    "Expression: {sent}\n\n"
    "What is the main object (or objects) referred to in the given expression or question?\n"
    "Respond with a single word (e.g., 'cat', 'person', 'dog') that best describes the target object(s)."
)

# Natural-language seeds that initialise the soft prompts (token embeddings, repeat-and-truncate).
SEED_PROMPT_FRAME = (
    "Look carefully at the image and focus on the single object that the expression refers to, "
    "its exact location and its outline."
)
SEED_PROMPT_VIDEO = (
    "Watch the video and focus on the single object that the expression refers to, where it is in "
    "every frame and how it moves."
)


# Control-token syntax of every supported backbone: Qwen's ``<|image_pad|>``, ``<|video_pad|>``,
# ``<|vision_start|>``, ``<|im_start|>`` ... (also used by LLaVA-OneVision and InternVL3's Qwen2
# tokenizers) and tag-shaped tokens such as ``<image>``, ``<video>``, ``<img>``, ``</img>``,
# ``<IMG_CONTEXT>``. Tokenizers match these strings exactly, so user text spelling one would become
# the control token itself: a stray vision placeholder breaks the processor's token count (a crash)
# and a chat marker rewrites the conversation.
_CONTROL_TOKEN_START = re.compile(r"<(?=\||/?[A-Za-z_][\w.\-]*>)")


def neutralise_control_tokens(text: str) -> str:
    """``text`` with every spelled-out control token broken by a space after its ``<``
    (``<|image_pad|>`` → ``< |image_pad|>``, ``<image>`` → ``< image>``), so it is read as plain text
    by every backbone's tokenizer. A visible space rather than a zero-width character: no tokenizer
    normalises it away. Applied once, here, to all user and model text placed in the prompts."""
    return _CONTROL_TOKEN_START.sub("< ", str(text))


def cot_prompt(expression: str) -> str:
    return COT_TEMPLATE.format(sent=neutralise_control_tokens(expression))


def query_prompt(expression: str, attributes: str | None) -> str:
    expression = neutralise_control_tokens(expression)
    if attributes is None:
        return QUERY_TEMPLATE_NO_COT.format(sent=expression)
    attributes = neutralise_control_tokens(attributes)
    return QUERY_TEMPLATE.format(sent=expression, attrs=attributes.rstrip(". ") or "none given")


_LABEL = re.compile(r"^\s*[*#>\-\s]*(reasoning|attributes?)\s*[*]*\s*[:：]\s*(.*)$", re.IGNORECASE)
# A label that starts mid-line: models often answer on one line ("Reasoning: x. Attributes: a, b").
# Split before it when it follows sentence punctuation, or when it is spelt as the prompt spells it
# (capitalised) after a space, so a lower-case "attributes:" inside the reasoning stays put.
_INLINE_LABEL = re.compile(
    r"(?:(?<=[.;!?|])[ \t]*(?=[*_]*(?i:reasoning|attributes?)[ \t]*[*_]*[ \t]*[:：])"
    r"|[ \t]+(?=[*_]*(?:Reasoning|Attributes?|REASONING|ATTRIBUTES?)[ \t]*[*_]*[ \t]*[:：]))")
_QUOTES = "\"'`“”‘’«»"
_MAX_ATTRIBUTES = 12


def _clean(text: str) -> str:
    text = text.strip().strip(_QUOTES).strip()
    text = re.sub(r"^[*\-•\d.)\s]+", "", text)  # list bullets / numbering
    return re.sub(r"\s+", " ", text.strip(_QUOTES + "* ")).strip()


def _split_attributes(text: str) -> list[str]:
    parts = re.split(r"[,;\n]|\s+\band\b\s+(?=\w)", text)
    seen: list[str] = []
    for part in parts:
        item = _clean(part).rstrip(".")
        if item and item.lower() not in (s.lower() for s in seen):
            seen.append(item)
    return seen


def parse_cot(raw: str) -> CoTResult:
    """Parse 'Reasoning: ...' / 'Attributes: ...' from a model answer, tolerating bad format."""
    issues: list[str] = []
    text = (raw or "").replace("\r\n", "\n").strip()
    text = _INLINE_LABEL.sub("\n", text)
    if not text:
        return CoTResult(raw=raw or "", reasoning="", attributes=(), issues=("empty answer",))

    sections: dict[str, list[str]] = {}
    current: str | None = None
    preamble: list[str] = []
    for line in text.split("\n"):
        m = _LABEL.match(line)
        if m:
            current = "reasoning" if m.group(1).lower().startswith("reason") else "attributes"
            if current in sections:
                issues.append(f"repeated '{current}' label; kept the first")
                current = f"_dup_{current}"
            sections.setdefault(current, []).append(m.group(2))
        elif current is None:
            preamble.append(line)
        else:
            sections[current].append(line)

    reasoning = _clean(" ".join(sections.get("reasoning", [])))
    attr_lines = [ln for ln in sections.get("attributes", []) if ln.strip()]
    if "reasoning" not in sections:
        issues.append("no 'Reasoning:' label")
        if preamble and "attributes" in sections:
            reasoning = _clean(" ".join(preamble))
    if "attributes" not in sections:
        issues.append("no 'Attributes:' label")
        # Fall back: the last non-empty line of an unlabelled answer is usually the list.
        body = [ln for ln in (preamble or sections.get("reasoning", [])) if ln.strip()]
        if "reasoning" not in sections and len(body) > 1:
            reasoning = _clean(" ".join(body[:-1]))
            attr_lines = [body[-1]]
        elif "reasoning" not in sections and body:
            attr_lines = [body[-1]]
    written = written_attributes("\n".join(attr_lines))
    attributes = _split_attributes("\n".join(attr_lines))
    if len(attributes) > _MAX_ATTRIBUTES:
        issues.append(f"{len(attributes)} attributes; kept the first {_MAX_ATTRIBUTES}")
        attributes = attributes[:_MAX_ATTRIBUTES]
    if not attributes:
        issues.append("no attributes found")
    if not reasoning:
        issues.append("no reasoning found")
    return CoTResult(raw=raw, reasoning=reasoning, attributes=tuple(attributes), issues=tuple(issues),
                     attributes_written=written if attributes else "")


def written_attributes(text: str) -> str:
    """The attributes text as written, only tidied for the prompt: lines joined, surrounding quotes,
    bullets and a final full stop removed (no splitting, no rewording)."""
    lines = [_clean(ln) for ln in (text or "").split("\n")]
    return ", ".join(ln for ln in lines if ln).rstrip(". ").strip()


def user_attributes(text: str) -> CoTResult:
    """Attributes typed by the user (counterfactual reasoning): used in the query as typed."""
    written = written_attributes(text)
    attributes = _split_attributes(written)
    if not attributes:
        from ..errors import InputError

        raise InputError("give at least one attribute, e.g. 'black, swimming, on the left'")
    return CoTResult(raw="", reasoning="", attributes=tuple(attributes[:_MAX_ATTRIBUTES]),
                     attributes_written=written)


def clean_query_word(text: str) -> str:
    """The single-word answer of the query step, for display (the rollout uses the token)."""
    words = re.findall(r"[^\W_]+(?:[-'][^\W_]+)*", text or "", flags=re.UNICODE)
    return words[0].lower() if words else ""
