"use strict";
// The chat page: streams answers from the node's OpenAI-compatible endpoint, keeps the conversation in
// this browser, and renders model text through markdown.js (text nodes only).

const STORE = "llmrelay.chat";
const KEY = "llmrelay.key";
const $ = (id) => document.getElementById(id);

const state = {
  messages: JSON.parse(localStorage.getItem(STORE) || "[]"),  // {role, content, error?, stopped?}
  controller: null,
};

function save() {
  localStorage.setItem(STORE, JSON.stringify(state.messages));
}

function status(text) {
  $("status").textContent = text || "";
}

function showMessage(message) {
  const box = llmrelay.el("article", `message ${message.role}` + (message.error ? " error" : ""));
  box.append(llmrelay.el("div", "role", message.role === "user" ? "You" : message.model || "assistant"));
  const body = llmrelay.el("div", "content");
  box.append(body);
  box.append(llmrelay.copyButton(() => message.content));
  $("messages").append(box);
  fill(body, message);
  return body;
}

function fill(body, message) {
  if (message.role === "assistant" && !message.error) markdown.render(body, message.content);
  else body.textContent = message.content;
  if (message.stopped) body.append(llmrelay.el("p", "stopped", "(stopped)"));
  body.scrollIntoView({ block: "end" });
}

function showAll() {
  $("messages").replaceChildren();
  state.messages.forEach(showMessage);
}

async function loadModels() {
  const select = $("model");
  const response = await fetch("/v1/models", { headers: llmrelay.headers(llmrelay.key(KEY)) });
  if (response.status === 401) {
    $("key-field").classList.add("needed");
    status("This node requires an API key: enter yours in the API key field.");
    return;
  }
  if (!response.ok) {
    status("Could not list the models: " + (await llmrelay.errorMessage(response)));
    return;
  }
  const models = (await response.json()).data.map((model) => model.id);
  const chosen = localStorage.getItem("llmrelay.model");
  select.replaceChildren(...models.map((id) => {
    const option = llmrelay.el("option", null, id);
    option.value = id;
    return option;
  }));
  if (models.includes(chosen)) select.value = chosen;
  status(models.length ? "" : "The node serves no model yet.");
}

function requestBody() {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  for (const message of state.messages) {
    if (!message.error) messages.push({ role: message.role, content: message.content });
  }
  const body = { model: $("model").value, messages, stream: true };
  const temperature = parseFloat($("temperature").value);
  if (!Number.isNaN(temperature)) body.temperature = temperature;
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) body.max_tokens = maxTokens;
  return body;
}

// The text deltas of an OpenAI-style server-sent event stream, as they arrive.
async function* deltas(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) yield delta.content;
      }
    }
  }
}

async function ask(question) {
  if (!$("model").value) {
    status("Choose a model first.");
    return;
  }
  state.messages.push({ role: "user", content: question });
  showMessage(state.messages[state.messages.length - 1]);
  const body = requestBody();
  const answer = { role: "assistant", content: "", model: body.model };
  state.messages.push(answer);
  const view = showMessage(answer);
  state.controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  status("Answering…");
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: llmrelay.headers(llmrelay.key(KEY)), body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    if (!response.ok) throw new Error(await llmrelay.errorMessage(response));
    for await (const piece of deltas(response)) {
      answer.content += piece;
      fill(view, answer);
    }
    status("");
  } catch (error) {
    if (error.name === "AbortError") {
      answer.stopped = true;
      status("Stopped.");
    } else {
      answer.error = true;
      answer.content = (answer.content ? answer.content + "\n\n" : "") + "Error: " + error.message;
      view.parentElement.classList.add("error");
      status("The request failed.");
    }
    fill(view, answer);
  } finally {
    state.controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
    save();
  }
}

$("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.controller) return;
  $("question").value = "";
  ask(question);
});
$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("ask").requestSubmit();
  }
});
$("stop").addEventListener("click", () => state.controller && state.controller.abort());
$("clear").addEventListener("click", () => {
  state.messages = [];
  save();
  showAll();
});
$("model").addEventListener("change", () => localStorage.setItem("llmrelay.model", $("model").value));
$("api-key").value = llmrelay.key(KEY);
$("api-key").addEventListener("change", () => {
  localStorage.setItem(KEY, $("api-key").value.trim());
  loadModels();
});

showAll();
loadModels();
