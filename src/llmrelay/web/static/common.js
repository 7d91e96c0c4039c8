"use strict";
// Shared by the chat page and the dashboard: the key the user gave, and element helpers that only ever
// set text (model output never becomes HTML).

const llmrelay = {
  key(name) { return localStorage.getItem(name) || ""; },

  headers(key) {
    const headers = { "content-type": "application/json" };
    if (key) headers.authorization = "Bearer " + key;
    return headers;
  },

  el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  },

  // The message of an error answer, whatever API shape it came in.
  async errorMessage(response) {
    let text = await response.text();
    try {
      const body = JSON.parse(text);
      const error = body.error;
      text = typeof error === "string" ? error : (error && error.message) || text;
    } catch (_) { /* not JSON: show it as it is */ }
    return `${response.status}: ${text}`;
  },

  copyButton(getText) {
    const button = llmrelay.el("button", "copy", "Copy");
    button.type = "button";
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(getText());
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    return button;
  },
};
