"""Generated parts of hand-written docs: the text between two marker lines is rewritten,
the rest of the file kept (docs/reproduction.md, docs/memory.md,
docs/learned_thresholds.md, docs/candidates.md)."""
import os


def splice(text, begin, end, body):
    """`text` with what lies between the markers `begin` and `end` replaced by `body` (each
    marker then on a line of its own); None when either marker is missing."""
    if begin not in text or end not in text:
        return None
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def write_atomically(path, text):
    """Writes `text` to `path` through a temporary file and a rename (no half-written doc)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
