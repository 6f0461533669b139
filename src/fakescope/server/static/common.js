// Shared by the pages: calls to the API (the key, if any, travels in the page's cookie) and small helpers.
"use strict";
const API = "/api/v1";

async function api(path, options = {}) {
  const response = await fetch(API + path, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let detail = response.statusText;
    try { const body = await response.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function verdictBadge(verdict, extraClass = "") {
  return element("span", { class: `verdict ${verdict || ""} ${extraClass}`, "data-verdict": verdict || "" }, verdict || "…");
}

function score(value) { return value === null || value === undefined ? "–" : Number(value).toFixed(3); }
function when(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : "–"; }
