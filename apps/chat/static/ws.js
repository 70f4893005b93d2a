// The WebSocket room's client: one socket to /ws, opened again when it drops.
// Messages are drawn with textContent, never as HTML.
const list = document.querySelector("#messages");
const form = document.querySelector("#say");
let socket = null;
let since = "";                                 // the last message id seen

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

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws?since=${since}`);
  socket.onmessage = (event) => {
    const news = JSON.parse(event.data);
    if (news.messages) news.messages.forEach(show);
    if (news.last !== undefined) since = news.last;
  };
  socket.onclose = () => setTimeout(connect, 2000);   // the server is away: try again soon
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ name: form.name.value, text: form.text.value }));
  form.text.value = "";
});

connect();
