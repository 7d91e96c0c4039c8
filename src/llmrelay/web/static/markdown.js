"use strict";
// A small markdown renderer that builds DOM nodes. Every piece of model text becomes a text node, so an
// answer holding <script> or <img onerror=...> shows those characters and never runs anything.
// Supported: fenced code blocks, headings, bullet and numbered lists, paragraphs, `code`, **bold**,
// *italic*, and [links](https://...) to http(s) addresses only.

const markdown = (() => {
  const el = (tag, text) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\n]+\*)|(\[[^\]\n]+\]\([^)\s]+\))/g;

  function inline(parent, text) {
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
      const token = match[0];
      if (match[1]) parent.append(el("code", token.slice(1, -1)));
      else if (match[2]) parent.append(el("strong", token.slice(2, -2)));
      else if (match[3]) parent.append(el("em", token.slice(1, -1)));
      else {
        const label = token.slice(1, token.indexOf("]"));
        const href = token.slice(token.indexOf("](") + 2, -1);
        if (/^https?:\/\//i.test(href)) {
          const link = el("a", label);
          link.href = href;
          link.rel = "noopener noreferrer";
          link.target = "_blank";
          parent.append(link);
        } else {
          parent.append(document.createTextNode(token));
        }
      }
      last = match.index + token.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  function lines(parent, text) {
    text.split("\n").forEach((line, index) => {
      if (index) parent.append(el("br"));
      inline(parent, line);
    });
  }

  function block(parent, text) {
    const rows = text.split("\n");
    const heading = /^(#{1,6})\s+(.*)$/.exec(rows[0]);
    if (heading && rows.length === 1) {
      const node = el("h" + Math.min(6, heading[1].length + 2));
      inline(node, heading[2]);
      parent.append(node);
      return;
    }
    const bullet = rows.every((row) => /^\s*[-*+]\s+/.test(row));
    const numbered = rows.every((row) => /^\s*\d+[.)]\s+/.test(row));
    if (bullet || numbered) {
      const list = el(bullet ? "ul" : "ol");
      for (const row of rows) {
        const item = el("li");
        inline(item, row.replace(/^\s*([-*+]|\d+[.)])\s+/, ""));
        list.append(item);
      }
      parent.append(list);
      return;
    }
    const paragraph = el("p");
    lines(paragraph, text);
    parent.append(paragraph);
  }

  // Replaces the content of `target` with `text` rendered; returns the code blocks' texts for copy buttons.
  function render(target, text) {
    target.replaceChildren();
    const parts = text.split(/^```[^\n]*\n?/m);
    parts.forEach((part, index) => {
      if (index % 2 === 1) {  // inside a fence (an unclosed one while the answer streams in)
        const pre = el("pre");
        const code = el("code", part.replace(/\n$/, ""));
        pre.append(code);
        if (typeof llmrelay !== "undefined") pre.append(llmrelay.copyButton(() => code.textContent));
        target.append(pre);
        return;
      }
      for (const chunk of part.split(/\n{2,}/)) {
        if (chunk.trim()) block(target, chunk.replace(/^\n+|\n+$/g, ""));
      }
    });
  }

  return { render };
})();
