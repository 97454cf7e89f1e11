"""MkDocs hook. The bench command writes its links relative to the repository root into
docs/bench/bench-results.md (``![...](docs/images/bench-results.png)``); the site shows that
file as a page and includes it into benchmarks.md with ``--8<--``. This hook rewrites such
links relative to the page being built, after pymdownx.snippets has done its includes."""
import posixpath
import re

from markdown import Extension
from markdown.preprocessors import Preprocessor

ROOT_LINK = re.compile(r"\]\(docs/([^)\s]+)\)")
SNIPPETS_PRIORITY = 32  # pymdownx.snippets' preprocessor; ours must run after it (lower)
_page_dir = ["."]  # the folder of the page being built, set by on_page_markdown


class RootLinks(Preprocessor):
    def run(self, lines):
        def relative(match):
            return "](" + posixpath.relpath(match.group(1), _page_dir[0]) + ")"

        return [ROOT_LINK.sub(relative, line) for line in lines]


class RootLinksExtension(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.register(RootLinks(md), "micrograd_root_links", SNIPPETS_PRIORITY - 1)


def on_config(config, **kwargs):
    config.markdown_extensions.append(RootLinksExtension())
    return config


def on_page_markdown(markdown, page, **kwargs):
    _page_dir[0] = posixpath.dirname(page.file.src_uri) or "."
    return markdown
