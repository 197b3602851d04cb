"""Every "chapter 5" in the book's prose is a link to chapter 5: a Sphinx extension.

The chapters cite one another by number ("chapter 5's ten-seed intervals"), and _toc.yml numbers them, so a reader
sees "5. Seeds: a fair comparison" in the sidebar. This module turns each mention in a page's text (prose, glued
sentences, admonitions; not code, not titles, not an existing link) into a link to that chapter, found by its file
name (`05_seeds`), so no notebook has to spell out a link. A chapter's mention of itself stays plain text, and so
does a number no chapter has. "chapters 5 and 7" links both numbers.
"""
import re

# "chapter 5", "Chapter 5's", "chapters 5 and 7", "chapters 2–4": a word, then numbers joined by , / and / or / –
MENTION = re.compile(r"\b[Cc]hapters?\s+(\d{1,2})((?:(?:,\s+|\s+and\s+|\s+or\s+|–)\d{1,2})*)\b")
NUMBER = re.compile(r"\d{1,2}")


def chapter_docs(docnames) -> dict[int, str]:
    """{5: '05_seeds', ...}: the chapters, by the number that starts their file name."""
    found = {}
    for name in docnames:
        match = re.match(r"(?:.*/)?(\d{2})_", name)
        if match:
            found[int(match.group(1))] = name
    return found


def spans(text: str) -> list[tuple[int, int, int]]:
    """(start, end, chapter number) of each piece of `text` to link: "chapter 5" whole, then each further number
    of a list ("chapters 5 and 7": "chapters 5" and "7")."""
    out = []
    for match in MENTION.finditer(text):
        out.append((match.start(), match.end(1), int(match.group(1))))
        for more in NUMBER.finditer(match.group(2)):
            out.append((match.start(2) + more.start(), match.start(2) + more.end(), int(more.group())))
    return out


def link_chapters(app, doctree, docname) -> None:
    """Sphinx's doctree-resolved hook: wraps each mention of another chapter in a reference to its page."""
    from docutils import nodes

    chapters = chapter_docs(app.env.found_docs)
    skip = (nodes.reference, nodes.FixedTextElement, nodes.literal, nodes.title, nodes.raw, nodes.math)
    for text in list(doctree.findall(nodes.Text)):
        if any(isinstance(node, skip) for node in _ancestors(text)):
            continue
        source = str(text)
        pieces = [(s, e, n) for s, e, n in spans(source) if n in chapters and chapters[n] != docname]
        if not pieces:
            continue
        parts, at = [], 0
        for start, end, number in pieces:
            parts.append(nodes.Text(source[at:start]))
            uri = app.builder.get_relative_uri(docname, chapters[number])
            parts.append(nodes.reference(source[start:end], source[start:end], refuri=uri, internal=True,
                                         classes=["chapter-link"]))
            at = end
        parts.append(nodes.Text(source[at:]))
        text.parent.replace(text, [p for p in parts if not isinstance(p, nodes.Text) or str(p)])


def _ancestors(node):
    node = node.parent
    while node is not None:
        yield node
        node = node.parent


def setup(app):
    """Sphinx's entry point."""
    app.connect("doctree-resolved", link_chapters)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
