// The chat page's client: one long poll at a time, sent again as soon as it
// answers. room.js draws each message.
const form = document.querySelector("#say");
let since = 0;                                   // the last message id seen

const pause = (ms) => new Promise((done) => setTimeout(done, ms));

async function poll() {
  for (;;) {
    try {
      const res = await fetch(`/poll?since=${since}`);
      if (res.status === 200) {
        const news = await res.json();
        news.messages.forEach(show);
        since = news.last;
      } else if (res.status !== 204) {         // 204: nothing new, ask again
        await pause(2000);
      }
    } catch (e) {                              // the server is away: try again soon
      await pause(2000);
    }
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const res = await fetch("/say", { method: "POST", body: new URLSearchParams(new FormData(form)) });
  if (res.ok) form.text.value = "";
});

poll();
