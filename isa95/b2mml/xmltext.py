"""The value of a simple-content element, as XML defines it.

A comment or processing instruction may stand anywhere in an element's text:
``<ID>L-<!-- checked -->1</ID>`` has the value ``L-1``. lxml keeps the text
before the first such node in ``element.text`` and the rest in the ``tail``
of each comment or instruction, so reading ``element.text`` alone would cut
the value short. :func:`text_of` joins the pieces; the element itself (and so
the comment, for a round trip) is left as it is.

B2MML's simple-content elements have no element children, so this is the
element's string value without descending into any.
"""

from __future__ import annotations

from lxml import etree

__all__ = ["set_text_of", "text_of"]


def text_of(element: etree._Element) -> str | None:
    """The text of ``element`` with comments and processing instructions left out.

    None when the element holds no text at all (as ``element.text`` is).
    """
    text = element.text
    if not len(element):  # no child node of any kind: the common case
        return None if text is None else str(text)
    parts = [] if text is None else [str(text)]
    for child in element:
        if not isinstance(child.tag, str):  # a comment or processing instruction
            tail = child.tail
            if tail is not None:
                parts.append(str(tail))
    if not parts:
        return None
    return "".join(parts)


def set_text_of(element: etree._Element, value: str | None) -> None:
    """Set the text of ``element``: the comments and instructions in it stay, after the text."""
    element.text = value
    for child in element:
        if not isinstance(child.tag, str):
            child.tail = None
