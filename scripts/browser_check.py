#!/usr/bin/env python3
"""Drives the chat page of a running `llm serve` in headless Chromium: types a message, sends it, waits for
the streamed reply, regenerates it, edits and resends the message, sends a second turn, stops a long reply
mid-stream, and saves a screenshot. Prints the screenshot's path; exits 1 if a reply does not appear.

Needs Debian's `chromium` and `chromium-driver` (apt-get install chromium chromium-driver) and selenium
(pip install selenium); it downloads nothing.

    .build/release/llm serve --model /tmp/tiny.bin --port 8000 &
    python3 scripts/browser_check.py --port 8000 --screenshot /tmp/llm-chat.png
"""
import argparse
import sys

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--screenshot", default="/tmp/llm-chat.png", help="where to save the PNG")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--driver", default="/usr/bin/chromedriver")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for each reply")
    parser.add_argument("--max-tokens", type=int, default=40, help="the page's max tokens for the replies (default 40)")
    args = parser.parse_args()

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(args.driver), options=options)
    wait = WebDriverWait(driver, args.timeout)

    def css(selector):
        return driver.find_elements(By.CSS_SELECTOR, selector)

    def click(selector, index=0):
        """Clicks in the page itself: render() rebuilds the message list, which would leave Selenium's
        element references stale."""
        driver.execute_script("document.querySelectorAll(arguments[0])[arguments[1]].click()", selector, index)

    # The state of the last reply, read in one go: null while there are not `count` replies or one is streaming.
    last_reply = """
        const replies = document.querySelectorAll(".message.assistant");
        if (replies.length !== arguments[0] || document.getElementById("send").hidden) return null;
        const last = replies[replies.length - 1], content = last.querySelector(".content"), error = last.querySelector(".error");
        return {text: content ? content.textContent : "", error: error ? error.textContent : null,
                stopped: last.querySelector(".note") !== null};
    """

    def reply_done(count):
        """Waits until there are `count` replies and none is streaming; returns the last one's state."""
        reply = wait.until(lambda d: d.execute_script(last_reply, count))
        if reply["error"]:
            raise RuntimeError(f"the reply is an error: {reply['error']}")
        return reply

    try:
        driver.get(f"http://{args.host}:{args.port}/")
        wait.until(lambda _: css("#model")[0].text)
        print(f"page loaded: title {driver.title!r}, model {css('#model')[0].text!r}")

        def set_field(name, value):
            field = css(name)[0]
            field.clear()
            field.send_keys(str(value))

        def set_max_tokens(n):
            set_field("#max-tokens", n)

        set_max_tokens(args.max_tokens)
        # Top-k off: a random model's 40 likeliest tokens often include one that ends the reply at once.
        set_field("#top-k", "")
        set_field("#temperature", 1)
        box = css("#input")[0]
        box.send_keys("Hello! Who are you?")
        click("#send")
        first = reply_done(1)["text"]
        print(f"reply: {first!r}")
        if not first.strip():
            raise RuntimeError("the reply is empty")

        click(".message.assistant .role button")  # Regenerate
        print(f"regenerated: {reply_done(1)['text']!r}")

        click(".message.user .role button")  # Edit
        area = css(".message.user textarea")[0]
        area.clear()
        area.send_keys("Tell me about the sea.")
        click(".message.user .edit-actions .primary")
        third = reply_done(1)["text"]
        shown = driver.execute_script('return document.querySelector(".message.user .content").textContent')
        print(f"edited message {shown!r}, reply: {third!r}")
        if shown != "Tell me about the sea.":
            raise RuntimeError(f"the edited message shows {shown!r}")

        box.send_keys("And the mountains?")
        click("#send")
        print(f"second turn reply: {reply_done(2)['text']!r}")

        # Stop: a long reply, stopped as soon as its first text shows. A fast model may finish first.
        set_max_tokens("")  # none: the server's limit
        box.send_keys("Go on for as long as you can.")
        click("#send")
        wait.until(lambda d: d.execute_script(
            'const c = document.querySelectorAll(".message.assistant .content"); return c.length === 3 && c[2].textContent !== ""'))
        click("#stop")
        stopped = reply_done(3)
        if stopped["stopped"]:
            print(f"stopped a reply after {len(stopped['text'])} characters")
        else:
            print("skip  stop: the reply finished before Stop was clicked")
        set_max_tokens(args.max_tokens)
        click(".message.assistant .role button")  # the stopped reply can be regenerated too
        print(f"regenerated the stopped reply: {reply_done(3)['text']!r}")

        driver.save_screenshot(args.screenshot)
        print(f"screenshot: {args.screenshot}")
    except (WebDriverException, RuntimeError, IndexError) as e:
        driver.save_screenshot(args.screenshot)
        print(f"FAIL: {type(e).__name__}: {e} (screenshot: {args.screenshot})")
        sys.exit(1)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
