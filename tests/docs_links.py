"""The repository's documentation stands alone.

    docs_links.py ROOT         check the tree at ROOT; exit 1 on a problem
    docs_links.py --self-test  check that each kind of problem is caught

Fails when
  - any text file names a place outside the repository: `../shared`,
    `shared/docs`, `/work/...` (the engineers' machine);
  - a Markdown link target (`[text](target)`) is absolute, leaves the
    repository, or names a file that does not exist;
  - a Markdown file or a source comment names a `.md` file, or a Markdown
    file names a repository path (`src/net/net.h`), that does not exist.
Files under build*/, .git/ and .deb/ are not the repository's.
"""
import os
import re
import sys
import tempfile

SKIP_DIRS = re.compile(r"^(build.*|\.git|\.deb|__pycache__)$")
OUTSIDE = re.compile(r"\.\./shared|\bshared/(docs|tools)\b|/work/")
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MD_NAME = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md)\b")
TOP_DIRS = ("cmake", "docs", "examples", "include", "plugin", "python",
            "scripts", "src", "tests", "tools")
# A glob (`tests/plugins/fake_tcpx*.c`) is matched whole, then skipped.
REPO_PATH = re.compile(r"(?<![\w/.$<{-])((?:%s)/[\w./*-]*[\w*-])" % "|".join(TOP_DIRS))


def text_files(root):
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not SKIP_DIRS.match(x))
        for f in sorted(files):
            if SKIP_DIRS.match(f):
                continue  # a worktree's .git file
            path = os.path.join(d, f)
            try:
                with open(path, encoding="utf-8") as fh:
                    yield os.path.relpath(path, root), fh.read()
            except (UnicodeDecodeError, OSError):
                continue  # binary


def exists(root, rel):
    full = os.path.normpath(os.path.join(root, rel))
    inside = full == root or full.startswith(root + os.sep)
    return inside and os.path.exists(full)


def check_md_links(root, rel, text, problems):
    base = os.path.dirname(rel)
    for target in MD_LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # URL or anchor in this page
        path = target.split("#", 1)[0]
        if os.path.isabs(path) or not exists(root, os.path.join(base, path)):
            problems.append("%s: link to %s: no such file in the repository"
                            % (rel, target))


def check_md_names(root, rel, text, problems):
    """`NAME.md` mentioned: at the path given, beside the file, or in docs/."""
    base = os.path.dirname(rel)
    for name in set(MD_NAME.findall(text)):
        if not any(exists(root, p) for p in
                   (name, os.path.join(base, name), os.path.join("docs", name))):
            problems.append("%s: names %s, which does not exist" % (rel, name))


def check_repo_paths(root, rel, text, problems):
    for path in set(REPO_PATH.findall(text)):
        if "*" not in path and not exists(root, path):
            problems.append("%s: names %s, which does not exist" % (rel, path))


def check_tree(root):
    root = os.path.realpath(root)
    problems = []
    for rel, text in text_files(root):
        if rel == os.path.join("tests", "docs_links.py"):
            continue  # this file spells the patterns out
        for m in OUTSIDE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            problems.append("%s:%d: points outside the repository (%s)"
                            % (rel, line, m.group(0)))
        if rel.endswith(".md"):
            check_md_links(root, rel, text, problems)
            check_md_names(root, rel, text, problems)
            check_repo_paths(root, rel, text, problems)
        elif rel.endswith((".c", ".h", ".cu", ".py", ".cmake", ".txt", ".sh")):
            check_md_names(root, rel, text, problems)
    return problems


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def self_test():
    """Each bad tree must be refused, the good one accepted."""
    good = {"README.md": "See [docs](docs/A.md), docs/A.md, `src/x.c`, `src/x*.c`.\n",
            "docs/A.md": "Back to [top](../README.md#x), A.md, [web](https://e.org).\n",
            "src/x.c": "/* A.md says why */\n"}
    bad = {
        "outside link": ("docs/A.md", "[d](../../shared/docs/DESIGN.md)\n"),
        "shared folder": ("src/x.c", "/* see shared/docs/NET_ABI.md */\n"),
        "missing link": ("README.md", "[b](docs/B.md)\n"),
        "absolute link": ("README.md", "[b](/etc/passwd)\n"),
        "missing md name": ("src/x.c", "/* DESIGN.md says why */\n"),
        "missing path": ("docs/A.md", "see `src/net/gone.c`\n"),
    }
    failures = 0
    for case, (rel, text) in [("good", (None, None))] + list(bad.items()):
        with tempfile.TemporaryDirectory() as tmp:
            for r, t in good.items():
                write(tmp, r, t)
            if rel:
                write(tmp, rel, text)
            problems = check_tree(tmp)
        if bool(problems) != (rel is not None):
            failures += 1
            print("self-test %s: %s" % (case, problems or "not caught"))
    print("self-test: %s" % ("FAILED" if failures else "every case caught"))
    return 1 if failures else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 2:
        print(__doc__)
        return 2
    problems = check_tree(argv[1])
    for p in problems:
        print(p)
    print("docs_links: %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
