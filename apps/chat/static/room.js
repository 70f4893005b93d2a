// What both chat pages share: drawing one message, with textContent, never as
// HTML. Loaded before chat.js (long poll) or ws.js (WebSocket).
const list = document.querySelector("#messages");

function show(m) {
  const item = document.createElement("li");
  const who = document.createElement("b");
  who.textContent = m.name;
  const time = document.createElement("time");
  time.textContent = new Date(m.at * 1000).toLocaleTimeString();
  item.append(time, " ", who, ": ", m.text);
  list.append(item);
  item.scrollIntoView();
}
