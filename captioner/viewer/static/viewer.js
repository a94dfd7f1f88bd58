// The captioner's attention viewer (see captioner/viewer/__init__.py). No libraries, no
// network: data arrive as script files that call captionerViewer.manifest / .page.
//
// manifest: {kind: "captions" | "report" | "glimpses", title, grid: [H, W],
//            summary: [[name, value, note]], page_size, pages,
//            items: [{i, page, name, cider?, absent?}]}   (what sorting and filtering need)
// show(items, grid): a live page's items (captioner serve), drawn at once.
// page(n, items): items of data page n, each {i, name, image, width, height, warning?,
//   hypotheses: [{caption, score, log_prob, words: [{w, p, map (base64 uint8 H*W), peak,
//                 cell?, absent?, heads?: [per layer [per head {map, peak}]]}]}],
//                                                   (captions, report; heads: a Transformer)
//   references?, boxes?: [{label, bbox: [x, y, w, h]}], size?: [w, h], cider?   (report)
//   label, probability, glimpses: [{x, y, squares, patches}], input: [h, w]      (glimpses)}
"use strict";

const captionerViewer = (() => {
  const SHOWN = 20;  // cards per screen
  const SIDE = 320;  // smaller images are drawn up to this many pixels on their long side
  const pages = new Map();   // data page number -> items
  const waiting = new Map(); // data page number -> [callbacks]
  let manifest = null;
  let view = {order: "file", onlyAbsent: false, screen: 0};

  const element = (tag, attributes = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  };

  function loadPage(number) {
    return new Promise((resolve, reject) => {
      if (pages.has(number)) return resolve(pages.get(number));
      const first = !waiting.has(number);
      if (first) waiting.set(number, []);
      waiting.get(number).push(resolve);
      if (!first) return;
      const script = element("script", {src: `data/page_${String(number).padStart(4, "0")}.js`});
      script.onerror = () => reject(new Error(`cannot read data page ${number}`));
      document.body.append(script);
    });
  }

  // --- attention maps ------------------------------------------------------------------
  const decoded = new WeakMap();
  function mapOf(word) {
    if (!decoded.has(word)) {
      const bytes = atob(word.map);
      const values = new Uint8Array(bytes.length);
      for (let k = 0; k < bytes.length; k++) values[k] = bytes.charCodeAt(k);
      decoded.set(word, values);
    }
    return decoded.get(word);
  }

  // a perceptual heat scale (dark red -> orange -> yellow -> white) with rising opacity
  function heat(value) {
    const t = value / 255;
    return [Math.min(255, 80 + 400 * t), Math.max(0, Math.min(255, 510 * t - 90)),
            Math.max(0, 255 * (2 * t - 1)), Math.round(200 * Math.sqrt(t))];
  }

  function overlay(values, rows, columns) {
    const small = element("canvas", {width: columns, height: rows});
    const context = small.getContext("2d");
    const pixels = context.createImageData(columns, rows);
    for (let k = 0; k < rows * columns; k++) pixels.data.set(heat(values[k]), 4 * k);
    context.putImageData(pixels, 0, 0);
    return small;
  }

  // --- one card ------------------------------------------------------------------------
  function drawCaption(card) {
    const {item, canvas, picture} = card;
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = true;
    context.imageSmoothingQuality = "high";
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.drawImage(picture, 0, 0, canvas.width, canvas.height);
    const hypothesis = item.hypotheses[card.hypothesis];
    const index = card.hover ?? card.selected;
    canvas.dataset.word = index ?? "";
    canvas.dataset.hypothesis = card.hypothesis;
    canvas.dataset.map = card.head ? card.head.join(",") : "";
    if (index !== null && index !== undefined) {
      const word = hypothesis.words[index];
      const [rows, columns] = manifest.grid;
      const shown = card.head && word.heads ? word.heads[card.head[0]][card.head[1]] : word;
      context.drawImage(overlay(mapOf(shown), rows, columns), 0, 0, canvas.width, canvas.height);
      if (word.cell !== undefined) {  // hard attention: the cell it read
        const w = canvas.width / columns, h = canvas.height / rows;
        context.strokeStyle = "#00e5ff";
        context.lineWidth = 2;
        context.strokeRect((word.cell % columns) * w, Math.floor(word.cell / columns) * h, w, h);
      }
      card.info.textContent = `“${word.w}”  p = ${word.p.toFixed(3)}` +
        (card.head ? `  (layer ${card.head[0] + 1}, head ${card.head[1] + 1})` : "") +
        (word.cell !== undefined ? `  (cell ${word.cell})` : "") +
        (word.absent ? "  — names an object the image does not hold" +
          (typeof word.absent === "string" ? ` (${word.absent.replace("_", " ")})` : "") : "") +
        (word.false ? `  — part of a false ${word.false} statement` : "");
    } else {
      card.info.textContent = `log p ${hypothesis.log_prob.toFixed(2)}, score ${hypothesis.score.toFixed(3)}`;
    }
    if (card.boxes && card.boxes.checked && item.boxes) {
      const [width, height] = item.size;
      const sx = canvas.width / width, sy = canvas.height / height;
      context.lineWidth = 2;
      context.font = "12px system-ui, sans-serif";
      for (const box of item.boxes) {
        const [x, y, w, h] = box.bbox;
        context.strokeStyle = "#ff00ff";
        context.strokeRect(x * sx, y * sy, w * sx, h * sy);
        context.fillStyle = "#ff00ff";
        context.fillText(box.label, x * sx + 2, Math.max(12, y * sy - 3));
      }
    }
  }

  function wordsOf(card) {
    const hypothesis = card.item.hypotheses[card.hypothesis];
    card.words.replaceChildren(...hypothesis.words.map((word, index) => {
      const span = element("span", {
        class: "word" + (word.absent ? " absent" : "") + (word.false ? " false" : "") +
          (index === card.selected ? " selected" : ""),
        ...(word.false ? {title: `false ${word.false} statement`} : {}),
        "data-index": index, text: word.w,
        onmouseenter: () => { card.hover = index; drawCaption(card); },
        onmouseleave: () => { card.hover = null; drawCaption(card); },
        onclick: () => {
          card.selected = card.selected === index ? null : index;
          card.hover = null;
          wordsOf(card);
          drawCaption(card);
        },
      });
      return span;
    }).flatMap((span, k) => (k ? [" ", span] : [span])));
  }

  function canvasFor(item) {
    const scale = Math.max(1, SIDE / Math.max(item.width, item.height));
    return element("canvas", {width: Math.round(item.width * scale),
                              height: Math.round(item.height * scale), class: "view"});
  }

  function captionCard(item) {
    const canvas = canvasFor(item);
    const picture = new Image();
    const card = {item, canvas, picture, hypothesis: 0, selected: null, hover: null, head: null};
    card.words = element("div", {class: "caption"});
    card.info = element("div", {class: "info"});
    const side = element("div", {class: "side"}, [element("div", {class: "name", text: item.name})]);
    if (item.warning) side.append(element("div", {class: "warning", text: item.warning}));
    if (item.hypotheses.length > 1) {
      const buttons = item.hypotheses.map((h, k) => element("button", {
        "data-hypothesis": k, class: k === 0 ? "selected" : "", title: h.caption,
        text: `${k + 1}`,
        onclick: () => {
          card.hypothesis = k;
          card.selected = card.hover = null;
          buttons.forEach((b, j) => b.classList.toggle("selected", j === k));
          wordsOf(card);
          drawCaption(card);
        },
      }));
      side.append(element("div", {class: "hyps"}, ["captions: ", ...buttons]));
    }
    side.append(card.words, card.info);
    const first = item.hypotheses[0].words[0];
    if (first && first.heads) {  // a Transformer: any layer's and head's map, or the map
      const options = [element("option", {value: "", text: "the map (its reduction)"})];
      first.heads.forEach((layer, l) => layer.forEach((_, h) => options.push(
        element("option", {value: `${l},${h}`, text: `layer ${l + 1}, head ${h + 1}`}))));
      side.append(element("label", {}, ["attention: ", element("select", {
        class: "head", onchange: event => {
          card.head = event.target.value ? event.target.value.split(",").map(Number) : null;
          drawCaption(card);
        }}, options)]));
    }
    if (item.cider !== undefined) {
      side.append(element("div", {class: "score", text: `CIDEr-D ${item.cider.toFixed(3)}`}));
    }
    if (item.boxes) {
      card.boxes = element("input", {type: "checkbox", class: "boxes",
                                     onchange: () => drawCaption(card)});
      side.append(element("label", {}, [card.boxes, " annotated boxes"]));
    }
    if (item.references) {
      side.append(element("div", {class: "name", text: "references:"}),
                  element("ol", {class: "refs"}, item.references.map(r => element("li", {text: r}))));
    }
    wordsOf(card);
    picture.onload = () => drawCaption(card);
    picture.src = item.image;
    return element("div", {class: "card", "data-item": item.i}, [canvas, side]);
  }

  function glimpseCard(item) {
    const canvas = canvasFor(item);
    const picture = new Image();
    const patches = element("div", {class: "patches"});
    const info = element("div", {class: "info"});
    const count = item.glimpses.length;
    let step = 0;
    const [inputHeight, inputWidth] = item.input;
    const draw = () => {
      const context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;  // the model's own pixels
      context.drawImage(picture, 0, 0, canvas.width, canvas.height);
      const sx = canvas.width / inputWidth, sy = canvas.height / inputHeight;
      context.strokeStyle = "#ffd24a";
      context.lineWidth = 2;
      context.beginPath();
      item.glimpses.slice(0, step + 1).forEach((g, k) => {
        if (k) context.lineTo(g.x * sx, g.y * sy); else context.moveTo(g.x * sx, g.y * sy);
      });
      context.stroke();
      const glimpse = item.glimpses[step];
      context.strokeStyle = "#00e5ff";
      for (const [x, y, w, h] of glimpse.squares) context.strokeRect(x * sx, y * sy, w * sx, h * sy);
      canvas.dataset.glimpse = step;
      patches.replaceChildren(...glimpse.patches.map(url => element("img", {src: url, alt: "patch"})));
      info.textContent = `glimpse ${step + 1} of ${count} at (${glimpse.y.toFixed(1)}, ${glimpse.x.toFixed(1)})`;
      buttons.forEach((b, k) => b.classList.toggle("selected", k === step));
    };
    const buttons = item.glimpses.map((g, k) => element("button", {
      "data-step": k, text: `${k + 1}`, onclick: () => { step = k; draw(); }}));
    const steps = element("div", {class: "steps"}, [
      element("button", {text: "‹", title: "previous glimpse", onclick: () => { step = Math.max(0, step - 1); draw(); }}),
      ...buttons,
      element("button", {text: "›", title: "next glimpse", onclick: () => { step = Math.min(count - 1, step + 1); draw(); }}),
    ]);
    picture.onload = draw;
    picture.src = item.image;
    const side = element("div", {class: "side"}, [
      element("div", {class: "name", text: item.name}),
      element("div", {class: "label", text: `${item.label}  (p = ${item.probability.toFixed(3)})`}),
      steps, info, patches]);
    return element("div", {class: "card", "data-item": item.i}, [canvas, side]);
  }

  // --- the list: filter, order, screens --------------------------------------------------
  function visible() {
    let items = manifest.items;
    if (view.onlyAbsent) items = items.filter(item => item.absent > 0 || item.false > 0);
    if (view.order !== "file") {
      const sign = view.order === "cider-ascending" ? 1 : -1;
      items = [...items].sort((a, b) => sign * (a.cider - b.cider) || a.i - b.i);
    }
    return items;
  }

  async function render() {
    document.body.dataset.ready = "false";
    const items = visible();
    const screens = Math.max(1, Math.ceil(items.length / SHOWN));
    view.screen = Math.min(view.screen, screens - 1);
    const shown = items.slice(view.screen * SHOWN, (view.screen + 1) * SHOWN);
    const needed = [...new Set(shown.map(item => item.page))];
    const loaded = new Map();
    for (const number of needed) {
      for (const item of await loadPage(number)) loaded.set(item.i, item);
    }
    const card = manifest.kind === "glimpses" ? glimpseCard : captionCard;
    document.getElementById("items").replaceChildren(...shown.map(item => card(loaded.get(item.i))));
    const count = document.querySelector("#controls .count");
    if (count) count.textContent = `${items.length} of ${manifest.items.length} images`;
    const pager = document.getElementById("pager");
    pager.replaceChildren();
    if (screens > 1) {
      pager.append(
        element("button", {text: "‹ previous", onclick: () => { view.screen--; render(); }}),
        ` ${view.screen + 1} / ${screens} `,
        element("button", {text: "next ›", onclick: () => { view.screen++; render(); }}));
      pager.children[0].disabled = view.screen === 0;
      pager.children[1].disabled = view.screen === screens - 1;
    }
    document.body.dataset.ready = "true";
  }

  function controls() {
    const box = document.getElementById("controls");
    if (manifest.kind === "report") {
      const order = element("select", {id: "order", onchange: event => {
        view.order = event.target.value; view.screen = 0; render(); }}, [
        element("option", {value: "file", text: "in split order"}),
        element("option", {value: "cider-ascending", text: "CIDEr-D, worst first"}),
        element("option", {value: "cider-descending", text: "CIDEr-D, best first"})]);
      const absent = element("input", {type: "checkbox", id: "only-absent", onchange: event => {
        view.onlyAbsent = event.target.checked; view.screen = 0; render(); }});
      box.append(element("label", {}, ["order: ", order]),
                 element("label", {}, [absent, " only captions with a false claim (an absent object or a false statement)"]));
    }
    box.append(element("span", {class: "count"}));
  }

  function summary() {
    const table = document.getElementById("summary");
    for (const [name, value, note] of manifest.summary) {
      table.append(element("tr", {}, [element("td", {text: name}),
                                      element("td", {class: "value", text: value}),
                                      element("td", {class: "note", text: note || ""})]));
    }
  }

  return {
    // a live page (captioner serve): these items' cards, drawn now, in place of any shown
    show(items, grid) {
      manifest = manifest || {kind: "captions", items: [], summary: []};
      manifest.grid = grid;
      document.body.dataset.ready = "false";
      document.getElementById("items").replaceChildren(...items.map(captionCard));
      document.body.dataset.ready = "true";
    },
    manifest(data) {
      manifest = data;
      summary();
      controls();
      render().catch(error => console.error(error));
    },
    page(number, items) {
      pages.set(number, items);
      for (const resolve of waiting.get(number) || []) resolve(items);
      waiting.delete(number);
    },
  };
})();
