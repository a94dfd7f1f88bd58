// The live page of captioner serve: images chosen or dropped here are sent to
// POST v1/caption (with each word's map), and drawn by the viewer's own cards
// (captionerViewer.show), so the maps look and behave as in a viewer folder.
"use strict";

(() => {
  const status = document.getElementById("status");
  const drop = document.getElementById("drop");
  const input = document.getElementById("files");
  let shown = [];  // object URLs of the images on the page

  const say = (text, error = false) => {
    status.textContent = text;
    status.className = error ? "error" : "";
  };

  // a map as numbers (rows of columns) -> the viewer's form: uint8 scaled to its peak
  function encode(rows) {
    const values = rows.flat();
    const peak = values.reduce((a, b) => Math.max(a, b), 0);
    let text = "";
    for (const value of values) {
      text += String.fromCharCode(peak > 0 ? Math.round(255 * Math.max(0, value) / peak) : 0);
    }
    return {map: btoa(text), peak};
  }

  function hypothesis(entry) {
    return {caption: entry.caption, score: entry.score, log_prob: entry.log_probability,
            words: entry.words.map(word => ({w: word.word, p: word.probability, ...encode(word.map)}))};
  }

  const measured = url => new Promise((resolve, reject) => {
    const picture = new Image();
    picture.onload = () => resolve([picture.naturalWidth, picture.naturalHeight]);
    picture.onerror = () => reject(new Error("the browser cannot show this image"));
    picture.src = url;
  });

  async function caption(files) {
    files = [...files].filter(file => file.size > 0);
    if (!files.length) return;
    const beam = document.getElementById("beam").value || "1";
    const best = Math.min(Number(document.getElementById("n-best").value || 1), Number(beam));
    const form = new FormData();
    for (const file of files) form.append("images", file, file.name);
    say(`captioning ${files.length} image(s)…`);
    let response, answer;
    try {
      response = await fetch(`v1/caption?maps=true&beam=${encodeURIComponent(beam)}&n_best=${best}`,
                             {method: "POST", body: form});
      answer = await response.json();
    } catch (error) {
      return say(`the server did not answer: ${error.message}`, true);
    }
    const results = response.ok ? answer : answer.results;
    if (!results) return say(answer.error || `the server answered ${response.status}`, true);
    shown.forEach(url => URL.revokeObjectURL(url));
    shown = [];
    const items = [], problems = [];
    for (const [index, result] of results.entries()) {
      if (result.error) { problems.push(result.error); continue; }
      const url = URL.createObjectURL(files[index]);
      shown.push(url);
      const [width, height] = await measured(url).catch(() => [384, 384]);
      const warning = result.out_of_domain ?
        `out of domain (distance ${result.domain_distance.toFixed(1)}): unlike the training images, so this caption is likely wrong` : null;
      items.push({i: index, name: result.path || files[index].name, image: url, width, height,
                  warning, hypotheses: (result.n_best || [result]).map(hypothesis)});
    }
    const grid = results.find(result => result.grid)?.grid;
    captionerViewer.show(items, grid || [1, 1]);
    say(problems.length ? `not read: ${problems.join("; ")}` :
        `${items.length} image(s) captioned; point at a word to see where the model looked`,
        problems.length > 0);
  }

  input.addEventListener("change", () => caption(input.files));
  drop.addEventListener("dragover", event => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", event => {
    event.preventDefault();
    drop.classList.remove("over");
    caption(event.dataTransfer.files);
  });

  fetch("v1/model").then(response => response.json()).then(model => {
    document.getElementById("model").textContent =
      `Model: ${model.decoder.kind} decoder, trained on ${model.trained_on || "unknown data"}.`;
    const beam = document.getElementById("beam");
    beam.max = model.limits.max_beam;
    beam.value = Math.min(Number(beam.value), model.limits.max_beam);
  }).catch(() => {});
})();
