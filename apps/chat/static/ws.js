// The WebSocket room's client: one socket to /ws, opened again when it drops.
// room.js draws each message.
const form = document.querySelector("#say");
let socket = null;
let since = "";                                 // the last message id seen

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
