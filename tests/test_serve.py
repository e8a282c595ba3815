"""``ferlite serve`` for real: server subprocesses on 127.0.0.1, real HTTP clients, real photos, a real browser.

One server (with a token) serves most tests; a second one shows a video file standing in for a camera. Their
working folder, TMPDIR and FERLITE_HOME are empty folders that must still be empty after they stop (nothing
written to disk). The helpers that start servers and send requests are those of benchmarks/serve_throughput.py.
"""

from __future__ import annotations

import http.client as http_client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, load_script, offline_env

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'ferlite[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'ferlite[serve]')")
pytest.importorskip("python_multipart", reason="the serve extra is not installed (pip install 'ferlite[serve]')")
skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the photos")
requests = pytest.importorskip("requests", reason="requests (installed with pooch) is the HTTP client here")

from ferlite import weights  # noqa: E402
from ferlite.cli import main  # noqa: E402
from ferlite.images import read_image_with_size  # noqa: E402
from ferlite.recognizer import Recognizer, scale_results  # noqa: E402

bench = load_script(REPO / "benchmarks" / "serve_throughput.py")
TOKEN = "test-" + secrets.token_urlsafe(16)
MAX_UPLOAD = 2_000_000  # the main server's --max-upload-mb 2
SCREENSHOT_ENV = "FERLITE_SCREENSHOT_DIR"  # set it to a folder (docs/img) to keep the browser test's screenshot


def as_json(value: object) -> object:
    """``value`` as it comes back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def sandbox(factory, name: str) -> SimpleNamespace:
    """Empty folders for a server's working folder, TMPDIR and FERLITE_HOME, and its environment."""
    root = factory.mktemp(name)
    box = SimpleNamespace(cwd=root / "cwd", tmp=root / "tmp", home=root / "home", logs=root / "logs")
    for folder in vars(box).values():
        folder.mkdir()
    box.env = offline_env(box.home, TMPDIR=str(box.tmp))
    return box


def assert_wrote_nothing(box: SimpleNamespace) -> None:
    written = [str(p) for folder in (box.cwd, box.tmp, box.home) for p in folder.rglob("*")]
    assert written == [], f"the server wrote {written}"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """PNG files: the astronaut (512x512, one face), and the benchmark's 640x480 one_face, two_faces, no_face."""
    folder = tmp_path_factory.mktemp("serve_photos")
    paths = {}
    for name, rgb in {"astronaut": skdata.astronaut(), **bench.photos()}.items():
        paths[name] = folder / f"{name}.png"
        cv2.imwrite(str(paths[name]), rgb[..., ::-1])
    return paths


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    """The default recognizer, as the servers load it (their default model and detector)."""
    rec = Recognizer.from_pretrained()
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def main_box(tmp_path_factory) -> SimpleNamespace:
    return sandbox(tmp_path_factory, "serve_main")


@pytest.fixture(scope="module")
def server(main_box):
    """The main server: a token (from the environment), a queue of 4, a 2 MB body limit, a 1.5 s read timeout,
    a 1-megapixel budget."""
    env = {**main_box.env, "FERLITE_SERVE_TOKEN": TOKEN}
    with bench.ServerProcess("--queue-size", "4", "--max-upload-mb", "2", "--read-timeout", "1.5",
                             "--max-megapixels", "1", log_path=main_box.logs / "serve.log", env=env,
                             cwd=main_box.cwd) as s:
        yield s


@pytest.fixture
def http(server) -> requests.Session:
    """A client carrying the token."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield session


def post_image(http, server, path: Path, *, endpoint: str = "v1/analyze", form: bool = False):
    if form:
        return http.post(server.url + endpoint, files={"file": (path.name, path.read_bytes(), "image/png")})
    return http.post(server.url + endpoint, data=path.read_bytes(), headers={"Content-Type": "image/png"})


@pytest.mark.parametrize("name, n_faces", [("astronaut", 1), ("two_faces", 2), ("no_face", 0)])
def test_analyze_is_recognizer_analyze(http, server, photos, recognizer, name, n_faces):
    expected = recognizer.analyze(photos[name])
    assert len(expected) == n_faces
    h, w = cv2.imread(str(photos[name])).shape[:2]
    for form in (False, True):
        response = post_image(http, server, photos[name], form=form)
        assert response.status_code == 200, response.text
        assert response.json() == {"width": w, "height": h, "faces": as_json(expected)}


def test_analyze_of_a_jpeg_over_the_pixel_budget_gives_pixels_of_the_file(http, server, photos, recognizer,
                                                                         tmp_path):
    big = tmp_path / "big.jpg"  # 1280x960: over the server's 1-megapixel budget, so decoded at half size
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(photos["one_face"])), (1280, 960)))
    rgb, size = read_image_with_size(big, max_pixels=1_000_000)
    assert rgb.shape[:2] == (480, 640) and size == (1280, 960)
    expected = scale_results(recognizer.analyze(rgb), rgb.shape, size)
    response = http.post(server.url + "v1/analyze", data=big.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert response.json() == {"width": 1280, "height": 960, "faces": as_json(expected)}
    assert response.json()["faces"][0]["box"][2] > 200  # the face is in pixels of the 1280x960 file


def test_predict_is_recognizer_predict(http, server, photos, recognizer, tmp_path):
    x, y, w, h = recognizer.analyze(photos["astronaut"])[0]["box"]
    crop = tmp_path / "face.png"
    cv2.imwrite(str(crop), cv2.imread(str(photos["astronaut"]))[y:y + h, x:x + w])
    emotions = recognizer.predict(crop)
    response = post_image(http, server, crop, endpoint="v1/predict")
    assert response.status_code == 200, response.text
    assert response.json() == {"emotions": emotions, "top": max(emotions, key=emotions.get)}


def test_models_healthz_and_schema(http, server, recognizer):
    models = http.get(server.url + "v1/models").json()
    entries = weights.list_weights()
    assert [m["name"] for m in models["models"]] == [e.name for e in entries]
    assert [m["where"] for m in models["models"]] == [weights.status(e.name) for e in entries]
    assert [m["servable"] for m in models["models"]] == [e.kind == "tflite" for e in entries]
    assert models["aliases"] == weights.ALIASES
    serving = {"file": recognizer.predictor.path.name, "backend": "litert", "detector": recognizer.detector.name}
    assert models["serving"] == serving
    health = http.get(server.url + "healthz").json()
    assert health["status"] == "ok" and health["camera"] is None and health["work"]["queue_size"] == 4
    assert {k: health[k] for k in serving} == serving
    schema = http.get(server.url + "openapi.json").json()
    assert {"/v1/analyze", "/v1/predict", "/v1/models", "/healthz", "/v1/camera"} <= set(schema["paths"])
    body = schema["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
    assert set(body) == {"image/*", "application/octet-stream", "multipart/form-data"}
    assert {"413", "415", "422", "503"} <= set(schema["paths"]["/v1/analyze"]["post"]["responses"])


def body(data, content_type: str | None = None) -> dict:
    """The keyword arguments of a POST with ``data`` (bytes or an iterator: chunked) and a Content-Type."""
    return {"data": data, "headers": {} if content_type is None else {"Content-Type": content_type}}


def chunks(n: int):
    """``n`` bytes or more in 64 KiB chunks (requests sends them chunked, without a Content-Length)."""
    for _ in range(n // 65536 + 1):
        yield b"\0" * 65536


BAD_INPUTS = [  # (what is sent, made from the astronaut's PNG and JPEG bytes), status, the message's words
    (lambda png, jpg: body(b"\0" * (MAX_UPLOAD + 1), "image/jpeg"), 413,
     "request body too large: Content-Length is 2,000,001 bytes; the limit is 2,000,000 bytes (2 MB)"),
    (lambda png, jpg: body(chunks(MAX_UPLOAD), "image/jpeg"), 413,
     "request body too large: more than 2,000,000 bytes received"),
    (lambda png, jpg: body(b"hello", "text/plain"), 415,
     "got Content-Type 'text/plain'; expected an image (image/jpeg"),
    (lambda png, jpg: body(b"{}", "application/json"), 415, "got Content-Type 'application/json'"),
    (lambda png, jpg: body(jpg), 415, "got no Content-Type"),
    (lambda png, jpg: body(png[:300], "image/png"), 422,
     "the upload is not a readable image: truncated: the PNG ends after 300 bytes, inside its 'IDAT' chunk, "
     "before its IEND chunk (expected a complete PNG file)"),
    (lambda png, jpg: body(jpg[:2000], "image/jpeg"), 422, "truncated: the JPEG ends after 2000 bytes"),
    (lambda png, jpg: body(b"", "image/png"), 422, "the upload is not a readable image: the file is empty (0 bytes)"),
    (lambda png, jpg: body(b"hello, not an image", "application/octet-stream"), 422,
     "it is not an image: it starts with b'hello, not"),
    (lambda png, jpg: body(cv2.imencode(".png", np.zeros((1000, 1200), np.uint8))[1].tobytes(), "image/png"), 422,
     "the upload is too large: a 1200x1000 PNG (1.2 megapixels) is over the 1-megapixel budget"),
    (lambda png, jpg: {"files": {"photo": ("a.png", png, "image/png")}}, 422,
     "the multipart/form-data body has fields 'photo'; expected the image in a field named 'file'"),
    (lambda png, jpg: body(b"--x\r\nno end", "multipart/form-data; boundary=y"), 400,
     "a malformed multipart/form-data body"),
]


@pytest.mark.parametrize("make, status, message", BAD_INPUTS)
def test_bad_input_gets_a_clear_error(http, server, photos, make, status, message):
    png = photos["astronaut"].read_bytes()
    jpg = cv2.imencode(".jpg", cv2.imread(str(photos["astronaut"])))[1].tobytes()
    response = http.post(server.url + "v1/analyze", **make(png, jpg))
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_other_methods_are_refused(http, server):
    assert http.get(server.url + "v1/analyze").status_code == 405
    assert http.get(server.url + "v1/camera").status_code == 404  # no --camera: says so
    assert "start it with --camera N" in http.get(server.url + "v1/camera").json()["detail"]


def test_token_rules_and_one_log_line_per_request(server, photos):
    url = server.url + "v1/analyze"
    png = {"data": photos["astronaut"].read_bytes(), "headers": {"Content-Type": "image/png"}}
    missing = requests.post(url, **png)
    assert missing.status_code == 401 and "carries no token" in missing.json()["detail"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.post(url, **png, params={"token": TOKEN[:-1] + "x"})
    assert wrong.status_code == 401 and "a wrong token" in wrong.json()["detail"]
    assert requests.get(server.url + "healthz", headers={"Authorization": "Bearer wrong" + TOKEN}).status_code == 401
    with requests.Session() as browser:  # opens /?token=..., then its page's requests carry the cookie only
        page = browser.get(server.url, params={"token": TOKEN, "marker": "page"})
        assert page.status_code == 200 and "<title>ferlite</title>" in page.text
        cookie = page.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get(server.url + "static/app.js").status_code == 200
        assert browser.post(url, **png).status_code == 200
    for i in range(3):
        assert requests.get(server.url + "healthz", params={"marker": f"line{i}"},
                            headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    evil = requests.get(server.url + "healthz",
                        headers={"Host": "attacker.example", "Authorization": f"Bearer {TOKEN}"})
    assert evil.status_code == 400 and "got Host 'attacker.example'" in evil.json()["detail"]
    log = server.log()
    assert TOKEN not in log
    assert len(re.findall(r'"GET /\?token=\*\*\*&marker=page" 200 \d+B [\d.]+ ms', log)) == 1
    for i in range(3):
        assert len(re.findall(rf'"GET /healthz\?marker=line{i}" 200 ', log)) == 1


@pytest.mark.parametrize("args, code, message", [
    (["--host", "0.0.0.0"], 2, "--host 0.0.0.0 is not a loopback address"),
    (["--host", "0.0.0.0", "--token", "short"], 1, "the token must be at least 16 characters"),
    (["--no-auth", "--token", "x" * 20], 2, "--no-auth and a token (--token or FERLITE_SERVE_TOKEN) contradict"),
    (["--camera", "missing.avi", "--port", "0"], 1, "video file not found: 'missing.avi'"),
])
def test_cli_refuses_unsafe_or_wrong_options(args, code, message):
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == code, result.output
    assert message in result.output


def test_keras_models_are_refused(tmp_path):
    with pytest.raises(RuntimeError) as refused:
        bench.ServerProcess("--model", "ferplus-mfn-1.0", log_path=tmp_path / "serve.log",
                            env=offline_env(tmp_path / "home"))
    assert "ferlite serve runs .tflite models on LiteRT, without TensorFlow; got ferplus-mfn-1.0.keras" in str(
        refused.value)


def rss_mb(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def test_load_is_bounded_and_nothing_is_lost(server, photos, recognizer):
    small = bench.encode(cv2.resize(bench.photos()["one_face"], (320, 240)))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bench.post_many(server, [small], clients=8, total=100, headers=auth)  # warm up: threads, buffers
    before = rss_mb(server.pid)
    replies = bench.post_many(server, [small], clients=8, total=300, headers=auth)
    grown = rss_mb(server.pid) - before
    statuses = [r.status for r in replies]
    assert len(replies) == 300 and set(statuses) <= {200, 503}, [r for r in replies if r.status not in (200, 503)]
    assert statuses.count(200) >= 10 and statuses.count(503) >= 1  # 8 clients, 1 worker + 4 places: some refused
    assert all(r.retry_after and int(r.retry_after) >= 1 for r in replies if r.status == 503)
    assert grown < 20, f"the server's memory grew by {grown:.1f} MB over 300 requests"
    health = requests.get(server.url + "healthz", headers=auth).json()["work"]
    assert health["waiting"] == 0 and health["refused"] >= statuses.count(503)
    response = requests.post(server.url + "v1/analyze", data=photos["astronaut"].read_bytes(),
                             headers={**auth, "Content-Type": "image/png"})
    assert response.json()["faces"] == as_json(recognizer.analyze(photos["astronaut"]))


def test_slow_and_vanished_clients_block_nobody(http, server, photos):
    head = (f"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: image/png\r\nContent-Length: {}\r\n\r\n")
    png = photos["astronaut"].read_bytes()
    slow = socket.create_connection((server.host, int(server.port)))
    slow.sendall(head.format(len(png)).encode() + png[:1000])  # and then nothing
    for _ in range(3):  # gone before their answers
        with socket.create_connection((server.host, int(server.port))) as vanished:
            vanished.sendall(head.format(len(png)).encode() + png)
    t0 = time.perf_counter()
    response = post_image(http, server, photos["astronaut"])
    assert response.status_code == 200 and len(response.json()["faces"]) == 1
    assert time.perf_counter() - t0 < 5
    slow.settimeout(10)
    answer = http_client.HTTPResponse(slow)  # the read timeout (1.5 s) ends the slow upload
    answer.begin()
    assert answer.status == 408
    assert "the request body was not complete after 1.5 s (1,000 bytes" in json.loads(answer.read())["detail"]
    slow.close()
    assert len(re.findall(r'"POST /v1/analyze" 499 ', server.log())) >= 2  # the vanished: dropped, at least unstarted


def test_the_server_never_loads_tensorflow(server):
    mapped = {line.split()[-1] for line in Path(f"/proc/{server.pid}/maps").read_text().splitlines()}
    assert any("litert" in path.lower() for path in mapped)
    assert not [path for path in mapped if "/tensorflow/" in path or "/keras/" in path]


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 30) -> np.ndarray:
    """A Y4M video (I420, 30 fps) of ``frames`` copies of a photo; returns the picture as the video holds it."""
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + i420.tobytes())
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


@pytest.fixture
def chromium():
    """``start(fake_video=None)``: a headless Chromium driven by selenium (its camera fed by ``fake_video``, a
    .y4m file), quit after the test; skips when Chromium, its driver or selenium is absent."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (binary and chromedriver):
        pytest.skip("headless Chromium needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver): not installed")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (pip install selenium) drives Chromium")
    drivers = []

    def start(fake_video: Path | None = None):
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,720"):
            options.add_argument(flag)
        if fake_video is not None:
            for flag in ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                         f"--use-file-for-fake-video-capture={fake_video}"):
                options.add_argument(flag)
        drivers.append(webdriver.Chrome(options=options,
                                        service=webdriver.ChromeService(executable_path=chromedriver)))
        return drivers[-1]

    yield start
    for driver in drivers:
        driver.quit()


def shown_top(driver, timeout: float = 20) -> str:
    """The first face's label on the page once there is one (read in one script: the list is redrawn often)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.querySelector('#faces .top')?.textContent"))


def test_page_shows_the_label_of_a_fake_camera_in_headless_chromium(server, recognizer, chromium, tmp_path):
    frame = write_y4m(tmp_path / "face.y4m", bench.photos()["one_face"])
    expected = recognizer.analyze(frame)[0]["top"]
    driver = chromium(tmp_path / "face.y4m")
    driver.get(f"{server.url}?token={TOKEN}")
    driver.execute_script("document.getElementById('start-camera').click()")
    top = shown_top(driver)
    status = driver.execute_script("return document.getElementById('status').textContent")
    assert top.split()[0] == expected, status
    assert status.startswith("Your camera: 1 face(s)")
    assert "token" not in driver.current_url  # the page took it out of the address bar
    shot = tmp_path / "serve_page.png"
    driver.save_screenshot(str(shot))
    h, w = cv2.imread(str(shot)).shape[:2]
    assert w == 1100 and h > 400
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copy(shot, Path(os.environ[SCREENSHOT_ENV]) / "serve_page.png")
    assert re.search(r'"POST /v1/analyze" 200 ', server.log())


def smile_removed(rgb: np.ndarray) -> np.ndarray:
    """The photo with the mouth of the face covered by the skin above it (no smile: a neutral face)."""
    out = rgb.copy()
    out[85:100, 118:160] = rgb[73:88, 118:160]
    return out


@pytest.fixture(scope="module")
def camera_box(tmp_path_factory) -> SimpleNamespace:
    return sandbox(tmp_path_factory, "serve_camera")


@pytest.fixture(scope="module")
def camera_video(camera_box, recognizer) -> SimpleNamespace:
    """A video standing in for a camera, its frames alternating the astronaut smiling and not (320x240, 20 fps);
    ``raw``: each frame's probabilities; ``smoothed``: where the smoothing (alpha 0.5) settles after each."""
    a = cv2.resize(skdata.astronaut()[:384], (320, 240), interpolation=cv2.INTER_AREA)
    path = camera_box.logs / "camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (320, 240))
    for i in range(20):
        writer.write(np.ascontiguousarray((a if i % 2 == 0 else smile_removed(a))[..., ::-1]))
    writer.release()
    cap = cv2.VideoCapture(str(path))
    decoded = [cap.read()[1] for _ in range(2)]  # the server's frames, as its OpenCV decodes them
    cap.release()
    raw = [np.array(list(recognizer.analyze(f, color="bgr")[0]["emotions"].values())) for f in decoded]
    assert abs(raw[0] - raw[1]).max() > 0.3  # the two frames differ: smoothing shows
    return SimpleNamespace(path=path, raw=raw, smoothed=[(2 * raw[0] + raw[1]) / 3, (2 * raw[1] + raw[0]) / 3])


@pytest.fixture(scope="module")
def camera_server(camera_box, camera_video):
    with bench.ServerProcess("--camera", str(camera_video.path), log_path=camera_box.logs / "serve.log",
                             env=camera_box.env, cwd=camera_box.cwd) as server:
        yield server


def mjpeg_frames(response, n: int) -> list[np.ndarray]:
    """The first ``n`` frames (or more) of an MJPEG stream, decoded."""
    data = b""
    for chunk in response.iter_content(8192):
        data += chunk
        if data.count(b"--frame") > n:
            break
    jpegs = re.findall(rb"Content-Length: \d+\r\n\r\n(.*?)\r\n--frame", data, re.S)
    return [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]


def test_camera_mode_streams_annotated_smoothed_frames(camera_server, camera_video):
    with requests.get(camera_server.url + "v1/camera/stream.mjpg", stream=True, timeout=20) as stream:
        assert stream.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        frames = mjpeg_frames(stream, 3)
    assert len(frames) >= 3 and all(f.shape == (240, 320, 3) for f in frames)
    for _ in range(100):
        latest = requests.get(camera_server.url + "v1/camera").json()
        if latest["frame"] >= 16:
            break
        time.sleep(0.1)
    face = latest["faces"][0]
    probs = np.array(list(face["emotions"].values()))
    # 3e-3: the class-balanced outputs magnify the server's tiny float differences in the rare classes
    np.testing.assert_allclose(probs, camera_video.smoothed[latest["frame"] % 2], atol=3e-3)
    assert abs(probs - camera_video.raw[latest["frame"] % 2]).max() > 0.05  # smoothed, not the frame's own
    x, y, w, _ = face["box"]
    edge = frames[-1][y - 2:y + 3, x + 5:x + w - 5].astype(int)  # around the box's top side, drawn in green
    green = (edge[..., 1] > 150) & (edge[..., 1] - edge[..., [0, 2]].max(axis=-1) > 60)
    assert green.any(axis=0).mean() > 0.8  # along most of the side


def test_page_shows_the_device_camera_in_headless_chromium(camera_server, chromium):
    driver = chromium()
    driver.get(camera_server.url)  # the page starts the device's camera by itself
    assert shown_top(driver).split()[0] in ("happiness", "neutral")
    assert driver.execute_script("return document.getElementById('stream').naturalWidth") == 320
    status = driver.execute_script("return document.getElementById('status').textContent")
    assert re.match(r"This device's camera: frame \d+, 1 face\(s\)", status), status


def test_sigint_stops_the_camera_server_with_a_stream_open(camera_server, camera_box):
    with requests.get(camera_server.url + "v1/camera/stream.mjpg", stream=True, timeout=20) as stream:
        assert mjpeg_frames(stream, 1)
        t0 = time.perf_counter()
        assert camera_server.stop(signal.SIGINT) == 0
        assert time.perf_counter() - t0 < 8
    assert "stopped by SIGINT" in camera_server.log()
    assert_wrote_nothing(camera_box)


def test_sigterm_stops_cleanly_and_nothing_was_written(server, main_box):
    assert requests.get(server.url + "healthz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert server.stop(signal.SIGTERM) == 0
    assert re.search(r"stopped by SIGTERM: \d+ image\(s\) handled, \d+ request\(s\) refused as busy", server.log())
    assert "Traceback" not in server.log()
    assert_wrote_nothing(main_box)
