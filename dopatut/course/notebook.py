"""Small helpers for the book's notebooks that work the same in the book build, locally and in Colab."""
from __future__ import annotations

import sys


def in_colab() -> bool:
    return "google.colab" in sys.modules


def glue(name: str, value, display: bool = False):
    """Store `value` for the book's prose; without myst-nb (as in Colab) just return it.

    Glue numbers, not strings (a string shows with quotes), and format in the prose:
    {glue:text}`dopamine_acc45:.1%` or {glue:text}`n_trainable:,.0f`.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return value
    myst_glue(name, plain(value), display=display)
    return value


def plain(value):
    """A NumPy or torch scalar as the Python number it holds (others as they are): glued as is, np.float64(94.2)
    is stored by its repr, 'np.float64(94.2)', which a format such as `:.1f` in the prose cannot read."""
    return value.item() if getattr(value, "shape", None) == () and hasattr(value, "item") else value


def setup_line() -> str:
    """What the setup cell prints: the device the chapter trains on, and where its results come from."""
    from ..foundations import bundle
    from ..foundations.device import default_device, describe

    if bundle.recompute_requested():
        source = "DOPATUT_RECOMPUTE=1: what the cache lacks is trained, nothing is read from the shipped bundle"
    elif default_device().type == "cpu":
        source = ("results the cache lacks come from the shipped bundle (DOPATUT_RECOMPUTE=1 trains them "
                  "instead)")
    else:
        source = ("the shipped bundle holds CPU results, so results the cache lacks are trained on this device "
                  "(seconds on a GPU)")
    return f"dopatut trains on {describe()}; {source}"


def source(obj, width: int = 76) -> str:
    """`obj`'s source for a page, no line over `width`: as inspect.getsource gives it, dedented, with a long
    line's trailing comment moved above it (wrapped) and a long code line broken between tokens (inside
    brackets, or with a backslash), so that the book never wraps a line at column 0 and loses its indent.
    The code is the same code: the result parses to the same syntax tree. The default width is what the
    book's text column shows in a code block without wrapping (about 77 characters)."""
    import inspect
    import textwrap

    text = textwrap.dedent(inspect.getsource(obj))
    lines, (prose, inside) = text.splitlines(), _rows(text)
    out, broken = [], False  # broken: this statement's earlier row was broken, so its later rows move too
    for row, line in enumerate(lines, 1):
        broken = broken and row in inside
        if row in inside and row not in prose and (broken or len(line) > width):
            line = inside[row][0] + " " * 4 + line.strip()  # a hanging indent, not one aligned with a bracket
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip())]
        if row in prose:  # a docstring's line: its words wrapped at its indent
            out += textwrap.wrap(line.strip(), width, initial_indent=indent, subsequent_indent=indent)
            continue
        code, comment = _split_comment(line)
        if comment:
            out += textwrap.wrap(comment.lstrip("# "), width, initial_indent=indent + "# ",
                                 subsequent_indent=indent + "# ")
            line = code.rstrip()
        if not code.strip():  # a comment alone on its line
            continue
        pieces = _break(line, width, inside.get(row, ("", 0))[1]) if len(line) > width else [line]
        broken = broken or len(pieces) > 1
        out += pieces
    return "\n".join(out)


def _rows(text: str) -> tuple[set[int], dict[int, str]]:
    """The rows (from 1) of triple-quoted strings (docstrings), and for each row that continues a statement
    inside open brackets, the indent its statement's first row has."""
    import io
    import tokenize

    prose, inside, depth, first = set(), {}, 0, ""
    lines = text.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        row = tok.start[0]
        if tok.type == tokenize.STRING and tok.string.lstrip("rbuRBUfF")[:3] in ('"""', "'''") \
                and not lines[row - 1][:tok.start[1]].strip():
            prose.update(range(row, tok.end[0] + 1))
        if tok.type == tokenize.OP and tok.string in "([{":
            if depth == 0:
                first = lines[row - 1][:len(lines[row - 1]) - len(lines[row - 1].lstrip())]
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.NL and depth > 0:
            inside[row + 1] = (first, depth)
    return prose, inside


def _tokens(line: str, depth: int = 0):
    """(start column, end column, text, bracket depth before it) of each token of one line of code, which starts
    `depth` brackets deep."""
    import io
    import tokenize

    found = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
                continue
            found.append((tok.start[1], tok.end[1], tok.string, depth))
            depth += tok.string in "([{" if tok.type == tokenize.OP else 0
            depth -= tok.string in ")]}" if tok.type == tokenize.OP else 0
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # a line that closes brackets opened above: tokens up to the error still serve
    return found


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one line; the comment is '' where there is none."""
    offset = len(line) - len(line.lstrip())
    for start, _, text, _ in _tokens(line):
        if text.startswith("#"):
            return line[:offset + start], line[offset + start:]
    return line, ""


_NOT_BEFORE = {".", ",", ":", ")", "]", "}", "(", "[", "="}  # never start a continuation line with these
_KEYWORDS, _OPERATORS = {"if", "else", "and", "or", "for"}, {"==", "!=", "+", "-", "*", "/", "@", "in"}


def _split_string(body: str, tokens, room: int):
    """(first literal, the rest of the body) where `body` starts with a one-line string longer than `room`,
    split after a space (outside an f-string's braces); None where it does not, or cannot be split."""
    if not tokens or tokens[0][1] <= room:
        return None
    token = body[:tokens[0][1]]
    prefix = token[:len(token) - len(token.lstrip("rRfFuU"))]
    quote = token[len(prefix):len(prefix) + 1]
    if quote not in ("'", '"') or token[len(prefix):len(prefix) + 3] == quote * 3 or not token.endswith(quote):
        return None
    depth, best = 0, None
    for i, ch in enumerate(token[:-1]):
        depth += (ch == "{") - (ch == "}") if "f" in prefix.lower() else 0
        if ch == " " and depth == 0 and len(prefix) + 1 < i < room - 1 and token[i - 1] != "\\":
            best = i
    if best is None:
        return None
    return token[:best + 1] + quote, prefix + quote + token[best + 1:] + body[len(token):]


def _break(line: str, width: int, depth: int = 0) -> list[str]:
    """One long line of code as several, each broken between two tokens: after a comma inside brackets where
    one fits, else before the last token that fits (a backslash where no bracket is open)."""
    indent = line[:len(line) - len(line.lstrip())]
    body, pieces, first = line.strip(), [], True
    while len(indent) + (0 if first else 4) + len(body) > width:
        lead = indent + ("" if first else " " * 4)
        tokens = _tokens(body, depth)
        fits = [(s, t, d) for (s, _, t, d), (_, _, before, _) in zip(tokens[1:], tokens)
                if len(lead) + s + (2 if d <= 0 else 0) <= width and t not in _NOT_BEFORE and before != "."]
        # before a keyword, else an operator, where one fits
        fits = [f for f in fits if f[1] in _KEYWORDS] or [f for f in fits if f[1] in _OPERATORS] or fits
        after_comma = [s for (s, _, _, _), (_, _, t, d) in zip(tokens[1:], tokens) if t == "," and d > 0
                       and len(lead) + s <= width]
        slash = " \\" if depth <= 0 else ""  # outside brackets, a line goes on only after a backslash
        split = _split_string(body, tokens, width - len(lead) - len(slash))
        if split is not None:  # a string too long for the line: two adjacent literals, which Python joins
            pieces.append(lead + split[0] + slash)
            body, first = split[1], False
            continue
        if after_comma and after_comma[-1] > (width - len(lead)) // 2:
            cut, slash = after_comma[-1], ""
        elif fits:
            cut, _, depth = fits[-1]
            slash = " \\" if depth <= 0 else ""
        else:
            break  # one token longer than the width: leave it
        pieces.append(lead + body[:cut].rstrip() + slash)
        depth = next(d for start, _, _, d in tokens if start == cut)  # how deep the rest starts
        body, first = body[cut:].lstrip(), False
    pieces.append(indent + ("" if first else " " * 4) + body)
    return pieces
