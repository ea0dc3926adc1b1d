#!/usr/bin/env python3
"""The page of `fovea serve` in a real browser: Debian's Chromium, driven by its chromedriver through Selenium.

Starts `fovea serve --port 0` on loopback with WEIGHTS, opens its page, uploads IMAGE through the file input, reads
the predicted label and the probability bars off the page, waits for the Grad-CAM overlay, draws a stroke on the
canvas (1-channel 28×28 models) and classifies it, takes a screenshot, and stops the server with SIGTERM. Fails
(exit 1, saying what differs) if the label is not the model's own top class for IMAGE (`fovea predict --json`), the
bars do not match its top-5 probabilities, the overlay does not load, or the server does not exit 0.

Usage: browser-test.py --fovea BIN --weights FILE --image PNG --screenshot OUT.png
Needs selenium (PyPI) and /usr/bin/chromium + /usr/bin/chromedriver (scripts/install-dependencies.sh).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request


def fail(message):
    print(f"browser test: FAILED: {message}", flush=True)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fovea", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    image = os.path.abspath(args.image)

    predicted = subprocess.run([args.fovea, "predict", "--weights", args.weights, "--json", "--top-k", "5", image],
                               capture_output=True, text=True, timeout=args.timeout)
    if predicted.returncode != 0:
        fail(f"fovea predict exited {predicted.returncode}: {predicted.stderr.strip()}")
    expected = json.loads(predicted.stdout.splitlines()[0])["top"]

    server = subprocess.Popen([args.fovea, "serve", "--weights", args.weights, "--port", "0", "--max-delay-ms", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    log = []

    def read_log():
        nonlocal port
        for line in server.stderr:
            log.append(line)
            match = re.search(r'"port":"(\d+)"', line)
            if match and port is None:
                port = int(match.group(1))

    threading.Thread(target=read_log, daemon=True).start()
    deadline = time.time() + args.timeout
    driver = None
    try:
        while port is None:
            if server.poll() is not None or time.time() > deadline:
                fail("the server did not start: " + "".join(log[-5:]))
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except Exception:
                pass
            if time.time() > deadline:
                fail("the server never became ready")
            time.sleep(0.05)

        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,760",
                     "--no-first-run", "--disable-extensions"]:
            options.add_argument(flag)
        # The driver is Debian's, named explicitly: Selenium Manager would try to download one.
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.set_page_load_timeout(args.timeout)
        driver.get(base + "/")
        wait = WebDriverWait(driver, args.timeout)
        driver.find_element(By.ID, "file").send_keys(image)
        wait.until(lambda d: d.find_element(By.ID, "label").text not in ("", "…") or d.find_element(By.ID, "error").text)
        error = driver.find_element(By.ID, "error").text
        if error:
            fail(f"the page shows an error: {error}")
        label = driver.find_element(By.ID, "label").text
        bars = [(bar.get_attribute("data-class"), float(bar.get_attribute("data-probability")))
                for bar in driver.find_elements(By.CSS_SELECTOR, "#bars .bar")]
        wait.until(lambda d: d.execute_script("const i = document.getElementById('cam'); return i.complete && i.naturalWidth > 0;"))
        cam_width = driver.execute_script("return document.getElementById('cam').naturalWidth;")
        if label != expected[0]["class"]:
            fail(f"the page says '{label}', the model's top class is '{expected[0]['class']}'")
        if [name for name, _ in bars] != [entry["class"] for entry in expected]:
            fail(f"bars {bars} are not the model's top classes {expected}")
        worst = max(abs(p - entry["probability"]) for (_, p), entry in zip(bars, expected))
        if worst > 1e-5:
            fail(f"bar probabilities differ from the model's by {worst}")
        driver.save_screenshot(args.screenshot)
        drawn = None
        if driver.find_elements(By.ID, "pad"):
            pad = driver.find_element(By.ID, "pad")
            ActionChains(driver).move_to_element_with_offset(pad, -40, -60).click_and_hold() \
                .move_by_offset(30, 60).move_by_offset(30, 60).release().perform()
            driver.execute_script("document.getElementById('label').textContent = '';")
            driver.find_element(By.ID, "classifydrawing").click()
            wait.until(lambda d: d.find_element(By.ID, "label").text not in ("", "…") or d.find_element(By.ID, "error").text)
            if driver.find_element(By.ID, "error").text:
                fail("classifying the drawing: " + driver.find_element(By.ID, "error").text)
            drawn = driver.find_element(By.ID, "label").text
        print(json.dumps({"label": label, "expected": expected[0]["class"], "bars": bars, "gradcam_width": cam_width,
                          "drawing_label": drawn, "screenshot": args.screenshot}), flush=True)
    finally:
        if driver is not None:
            driver.quit()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            status = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            fail("the server did not exit within 30 s of SIGTERM")
    if status != 0:
        fail(f"the server exited {status} after SIGTERM: " + "".join(log[-5:]))
    print("browser test: passed", flush=True)


if __name__ == "__main__":
    main()
