"""The references page's labels in the inline citations' author-year style: a Sphinx extension.

The book cites author-year (`bibtex_reference_style: author_year`: "[Liu et al., 2022]"), but sphinxcontrib-bibtex
labels the bibliography with the pybtex style's label style, "alpha" by default ("[LTM+22]"), so a reader could
not find a citation's entry by its label. This module registers a pybtex formatting style, `author_year`, whose
labels are the inline text: the authors through sphinxcontrib-bibtex's own person template (the `PersonStyle`
its author-year reference style uses), then ", " and the year. The entries are sorted as in the default style
(author, year, title). _config.yml loads the module (`sphinx: extra_extensions`) and names the style
(`bibtex_default_style`). Two entries with one label get "a", "b" after the year, as author-year
bibliographies do; their inline citations would then lack the letter.
"""
from types import SimpleNamespace

STYLE = "author_year"


def entry_label(entry) -> str:
    """'Ghasemlou, 2026', 'Ben Zaken et al., 2022': what an author-year citation of the pybtex `entry` reads."""
    from sphinxcontrib.bibtex.style.referencing import PersonStyle  # the book's build needs it, not the course

    person = PersonStyle()
    authors = person.author_or_editor_or_title(full=False).format_data(
        {"entry": entry, "style": SimpleNamespace(person=person)})
    return f"{authors.render_as('text')}, {entry.fields.get('year', 'n.d.')}"


def labels(entries) -> list[str]:
    """The labels of `entries`, in their order; labels shared by several entries get a letter after the year."""
    plain = [entry_label(entry) for entry in entries]
    seen: dict[str, int] = {}
    out = []
    for label in plain:
        if plain.count(label) == 1:
            out.append(label)
        else:
            seen[label] = seen.get(label, 0) + 1
            out.append(f"{label}{chr(ord('a') + seen[label] - 1)}")
    return out


def setup(app):
    """Sphinx's entry point: registers the pybtex formatting style `author_year`."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.alpha import Style as AlphaStyle  # sorts by author, year, title
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            return iter(labels(list(sorted_entries)))

    class AuthorYearStyle(AlphaStyle):
        default_label_style = AuthorYearLabels

    register_plugin("pybtex.style.formatting", STYLE, AuthorYearStyle, force=True)  # force: a second build
    return {"parallel_read_safe": True, "parallel_write_safe": True}
