"""MkDocs hook: make the links inside the tutorial notebooks work on the site, and check them.

A notebook links to the next tutorial the way Jupyter and GitHub understand,
``[2. ...](02_snntorch_at_t1.ipynb)``. mkdocs-jupyter renders a notebook to HTML itself, so
MkDocs neither rewrites such a link to the page's URL (``../02_snntorch_at_t1/``) nor checks
it, and on the site it would point to a file that is not there. This hook does both for every
notebook page: a relative link to a documentation file (``.ipynb`` or ``.md``) becomes the URL
of that page, and a link to a file that does not exist is logged as a warning, which
``mkdocs build --strict`` turns into an error (as it does for the Markdown pages).
"""

from __future__ import annotations

import logging
import posixpath
import re

log = logging.getLogger("mkdocs.hooks.notebook_links")

_HREF = re.compile(r'href="([^"#:?]+\.(?:ipynb|md))(#[^"]*)?"')


def on_page_content(html, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    here = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        if target.startswith("/"):
            return match.group(0)
        src = posixpath.normpath(posixpath.join(here, target))
        file = files.get_file_from_path(src)
        if file is None:
            log.warning(
                "Notebook '%s' links to '%s', but the target '%s' is not among the "
                "documentation files.", page.file.src_uri, target, src
            )
            return match.group(0)
        return f'href="{file.url_relative_to(page.file)}{anchor}"'

    return _HREF.sub(rewrite, html)
