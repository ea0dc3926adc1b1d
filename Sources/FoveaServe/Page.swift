import Foundation

/// The page at `/`: choose, drop or paste an image (or draw one, for 1-channel 28×28 models), see the top classes as
/// bars and the Grad-CAM overlay of the top class. Everything is inline (no CDN, no other request than to this
/// server). Without JavaScript the same page is a plain form whose answer is `results`.
enum Page {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let style = """
        body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 860px; color: #222; padding: 0 12px; }
        h1 { font-size: 22px; margin-bottom: 2px; } .meta { color: #666; font-size: 13px; margin-top: 0; }
        #drop { border: 2px dashed #999; border-radius: 8px; padding: 18px; text-align: center; color: #555; }
        #drop.over { border-color: #1f77b4; background: #eef5fb; }
        .row { display: flex; flex-wrap: wrap; gap: 24px; margin-top: 16px; align-items: flex-start; }
        .panel h2 { font-size: 14px; margin: 0 0 6px; }
        img.view { width: 224px; height: 224px; object-fit: contain; border: 1px solid #ccc; background: #fafafa; image-rendering: pixelated; }
        img.cam { image-rendering: auto; }
        canvas { border: 1px solid #999; touch-action: none; background: #000; cursor: crosshair; }
        .bar { display: flex; align-items: center; gap: 8px; margin: 3px 0; font-size: 13px; }
        .bar .name { width: 120px; text-align: right; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        .bar .track { width: 260px; height: 14px; background: #eee; border-radius: 3px; }
        .bar .fill { height: 14px; background: #1f77b4; border-radius: 3px; }
        #error { color: #b00020; } button { margin-right: 6px; }
        table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
        """

    /// The interactive page.
    static func render(model: String, version: String, classes: [String], inputShape: [Int]) -> String {
        let drawable = inputShape == [1, 28, 28]
        let canvas = drawable ? """
            <div class=panel id=drawpanel><h2>…or draw one</h2>
            <canvas id=pad width=224 height=224></canvas><br>
            <button type=button id=classifydrawing>Classify the drawing</button><button type=button id=clear>Clear</button></div>
            """ : ""
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Fovea · \(escape(model))</title><style>\(style)</style></head><body>
            <h1>Fovea image classifier</h1>
            <p class=meta>model <b id=model>\(escape(model))</b> · version \(escape(version)) · \(classes.count) classes ·
            input \(inputShape.map(String.init).joined(separator: "×"))</p>
            <form id=form action="/v1/predict?format=html" method=post enctype="multipart/form-data">
            <div id=drop>Drop an image here, paste one (Ctrl+V), or choose a file:
            <input type=file id=file name=image accept="image/png,image/jpeg"> <noscript><button type=submit>Classify</button></noscript></div>
            </form>
            <p id=error role=alert></p>
            <div class=row>
            <div class=panel><h2>Image</h2><img class=view id=preview alt="the image sent"></div>
            <div class=panel><h2>Top classes</h2><div id=label></div><div id=bars></div></div>
            <div class=panel><h2>Grad-CAM of the top class</h2><img class="view cam" id=cam alt="Grad-CAM overlay"></div>
            \(canvas)
            </div>
            <script>
            \(script)
            </script>
            </body></html>
            """
    }

    static let script = """
        "use strict";
        const $ = (id) => document.getElementById(id);
        const show = (message) => { $("error").textContent = message || ""; };
        async function send(blob) {
          show("");
          $("preview").src = URL.createObjectURL(blob);
          $("label").textContent = "…"; $("bars").textContent = ""; $("cam").removeAttribute("src");
          try {
            const answer = await fetch("/v1/predict?top_k=5", { method: "POST", body: blob });
            const result = await answer.json();
            if (!answer.ok) { $("label").textContent = ""; show(result.error ? result.error.message : answer.statusText); return; }
            const top = result.predictions[0].top;
            const label = $("label");
            label.textContent = top[0].class; label.dataset.index = top[0].index;
            label.style.fontWeight = "bold";
            const bars = $("bars");
            for (const entry of top) {
              const row = document.createElement("div"); row.className = "bar";
              row.dataset.class = entry.class; row.dataset.probability = entry.probability;
              const name = document.createElement("span"); name.className = "name"; name.textContent = entry.class;
              const track = document.createElement("span"); track.className = "track";
              const fill = document.createElement("span"); fill.className = "fill";
              fill.style.display = "block"; fill.style.width = (100 * entry.probability).toFixed(1) + "%";
              track.appendChild(fill);
              const value = document.createElement("span"); value.textContent = (100 * entry.probability).toFixed(1) + " %";
              row.append(name, track, value); bars.appendChild(row);
            }
            const explained = await fetch("/v1/explain?class=" + top[0].index, { method: "POST", body: blob });
            const explanation = await explained.json();
            if (explained.ok) { $("cam").src = explanation.explanations[0].overlay_png; }
            else { show(explanation.error ? explanation.error.message : explained.statusText); }
          } catch (error) { show("The server did not answer: " + error); }
        }
        $("file").addEventListener("change", (event) => { if (event.target.files[0]) send(event.target.files[0]); });
        const drop = $("drop");
        drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
        drop.addEventListener("dragleave", () => drop.classList.remove("over"));
        drop.addEventListener("drop", (event) => {
          event.preventDefault(); drop.classList.remove("over");
          const file = event.dataTransfer.files[0]; if (file) send(file);
        });
        document.addEventListener("paste", (event) => {
          for (const item of event.clipboardData.items) {
            if (item.type.startsWith("image/")) { send(item.getAsFile()); event.preventDefault(); return; }
          }
        });
        const pad = $("pad");
        if (pad) {
          const context = pad.getContext("2d");
          const clear = () => { context.fillStyle = "#000"; context.fillRect(0, 0, pad.width, pad.height); };
          clear();
          context.strokeStyle = "#fff"; context.lineWidth = 18; context.lineCap = "round"; context.lineJoin = "round";
          let drawing = false;
          const at = (event) => { const box = pad.getBoundingClientRect(); return [event.clientX - box.left, event.clientY - box.top]; };
          pad.addEventListener("pointerdown", (event) => { drawing = true; context.beginPath(); context.moveTo(...at(event)); });
          pad.addEventListener("pointermove", (event) => { if (drawing) { context.lineTo(...at(event)); context.stroke(); } });
          addEventListener("pointerup", () => { drawing = false; });
          $("clear").addEventListener("click", clear);
          $("classifydrawing").addEventListener("click", () => pad.toBlob((blob) => send(blob), "image/png"));
        }
        """

    /// The answer to the plain form (no JavaScript): the top classes as a table with bars.
    static func results(_ predictions: [[String: Any]], model: String) -> String {
        var rows = ""
        for prediction in predictions {
            rows += "<h2>\(escape(prediction["image"] as? String ?? ""))</h2>"
            for entry in prediction["top"] as? [[String: Any]] ?? [] {
                let probability = entry["probability"] as? Double ?? 0
                rows += "<div class=bar><span class=name>\(escape(entry["class"] as? String ?? ""))</span>"
                rows += "<span class=track><span class=fill style=\"display:block;width:\(String(format: "%.1f", probability * 100))%\"></span></span>"
                rows += "<span>\(String(format: "%.1f", probability * 100)) %</span></div>"
            }
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Fovea · result</title><style>\(style)</style></head><body>
            <h1>\(escape(model))</h1>\(rows)<p><a href="/">Classify another image</a></p></body></html>
            """
    }
}
