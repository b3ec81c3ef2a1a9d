// MathJax 3 configuration for every page of the site (loaded before MathJax itself).
// Markdown pages: pymdownx.arithmatex (generic) emits \( \) and \[ \].
// Notebook pages (mkdocs-jupyter/nbconvert) keep the notebook's own $ $ and $$ $$.
// MathJax skips <code> and <pre> by default, so a "$" in code is never taken for math;
// write \$ for a literal dollar sign in prose.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
};
