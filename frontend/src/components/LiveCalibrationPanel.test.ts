import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "../api/client";
import LiveCalibrationPanel, {
  type Board,
  type CalibrationSession,
  type IntrinsicsSolve,
  type LiveCalibration,
  type LiveCalibrationClient,
} from "./LiveCalibrationPanel.svelte";

afterEach(cleanup);

const BOARD: Board = { squares_x: 7, squares_y: 5, square_length_m: 0.04, marker_length_m: 0.03, dictionary: "DICT_4X4_50" };
const emptyGrid = () => Array.from({ length: 8 }, () => Array(8).fill(0) as number[]);

function sessionWith(corners: number[], board: Board = BOARD): CalibrationSession {
  const grid = emptyGrid();
  corners.forEach((n, i) => (grid[i % 8][i % 8] += n));
  return {
    camera: "wrist",
    board,
    views: corners.map((n, i) => ({ index: i, frame_index: 10 + i, corners: n })),
    min_views: 2,
    min_corners: 8,
    coverage_grid: grid,
    coverage: corners.length / 64,
  };
}

function liveOf(state: LiveCalibration["state"], corners: number, session = sessionWith([])): LiveCalibration {
  const framed = state !== "no_frame";
  return {
    camera: "wrist",
    state,
    problem: state === "ok" ? null : state === "no_frame" ? "no frame within 2 s; is the camera's driver running?" : "board not in view: 0 corners, a view needs 8",
    frame_index: framed ? 7 : null,
    stamp_ns: framed ? 1 : null,
    age_ms: framed ? 42 : null,
    image_width: framed ? 640 : null,
    image_height: framed ? 480 : null,
    image_jpeg: framed ? "AAAA" : null,
    corners,
    session,
  };
}

function solved(session: CalibrationSession): IntrinsicsSolve {
  return {
    session,
    calibration: {
      id: 3, kind: "intrinsics", device: "wrist", version: 4, created_at: "2026-05-01T10:00:00Z",
      file: "calibrations/wrist/intrinsics_v004.json", problem: null, data: {}, hand_eye: null, workspace: null,
      intrinsics: {
        image_width: 640, image_height: 480, camera_matrix: [[580, 0, 319.5], [0, 580, 239.5], [0, 0, 1]],
        dist_coeffs: [0, 0, 0, 0, 0], rms_px: 0.11, focal_std_px: 0.3,
        per_view_error_px: [0.12, null], rejected: { "1": "reprojection error 3.10 px > 1.00 px" }, coverage: 0.4,
      },
    },
  };
}

function fakeClient(overrides: Partial<LiveCalibrationClient> = {}): LiveCalibrationClient {
  return {
    cameras: vi.fn(async () => [{ name: "front", kind: "sim", views: 0 }, { name: "wrist", kind: "sim", views: 0 }]),
    live: vi.fn(async () => liveOf("ok", 24)),
    capture: vi.fn(async () => sessionWith([24])),
    clear: vi.fn(async () => sessionWith([])),
    solve: vi.fn(async () => solved(sessionWith([24, 20]))),
    setBoard: vi.fn(async (_camera: string, board: Board) => ({ views_dropped: 0, session: sessionWith([], board) })),
    ...overrides,
  };
}

describe("LiveCalibrationPanel", () => {
  it("shows the annotated frame and corner count, captures views into the coverage grid", async () => {
    const client = fakeClient();
    render(LiveCalibrationPanel, { props: { client, canAct: true, pollMs: 0 } });
    const image = await screen.findByTestId("live-image");
    expect(image.getAttribute("src")).toBe("data:image/jpeg;base64,AAAA");
    expect(screen.getByTestId("corner-count").textContent).toBe("24 corners");
    expect(client.live).toHaveBeenCalledWith("front"); // the first camera of the config
    expect(screen.getByTestId("no-views")).toBeTruthy();
    expect((screen.getByTestId("solve") as HTMLButtonElement).disabled).toBe(true); // 0 of 2 views

    await fireEvent.click(screen.getByTestId("capture"));
    await waitFor(() => expect(screen.getByTestId("views")).toBeTruthy());
    expect(client.capture).toHaveBeenCalledWith("front");
    const cells = within(screen.getByTestId("coverage")).getAllByTitle(/corners/);
    expect(cells).toHaveLength(64);
    expect(cells.filter((c) => c.dataset.count !== "0").map((c) => c.dataset.count)).toEqual(["24"]);
    expect(screen.getByTestId("views-needed").textContent).toContain("1 of 2 views");
  });

  it("solves, then lists each view's reprojection error or why it was not used", async () => {
    const client = fakeClient({ live: vi.fn(async () => liveOf("ok", 24, sessionWith([24, 20]))) });
    render(LiveCalibrationPanel, { props: { client, canAct: true, pollMs: 0 } });
    const solve = (await screen.findByTestId("solve")) as HTMLButtonElement;
    await waitFor(() => expect(solve.disabled).toBe(false));
    await fireEvent.click(solve);
    const result = await screen.findByTestId("solve-result");
    expect(result.textContent).toContain("Stored as version 4 of wrist");
    const rows = within(screen.getByTestId("views")).getAllByRole("row").slice(1) as HTMLTableRowElement[];
    expect(rows.map((r) => r.cells[3].textContent)).toEqual(["0.120 px", "not used: reprojection error 3.10 px > 1.00 px"]);
  });

  it("says why a capture or solve was refused and keeps the views", async () => {
    const client = fakeClient({
      live: vi.fn(async () => liveOf("ok", 24, sessionWith([24, 20]))),
      solve: vi.fn(async () => {
        throw new Error("intrinsics: focal length undetermined; tilt the board 20-40 degrees");
      }),
    });
    render(LiveCalibrationPanel, { props: { client, canAct: true, pollMs: 0 } });
    const solve = (await screen.findByTestId("solve")) as HTMLButtonElement;
    await waitFor(() => expect(solve.disabled).toBe(false));
    await fireEvent.click(solve);
    expect((await screen.findByTestId("action-error")).textContent).toContain("focal length undetermined");
    expect(screen.queryByTestId("solve-result")).toBeNull();
    expect(within(screen.getByTestId("views")).getAllByRole("row")).toHaveLength(3);
  });

  it("shows the board-not-in-view and no-camera states, and no capture for them", async () => {
    const client = fakeClient({ live: vi.fn(async () => liveOf("board_not_found", 0)) });
    render(LiveCalibrationPanel, { props: { client, canAct: true, pollMs: 0 } });
    expect((await screen.findByTestId("live-problem")).textContent).toContain("board not in view");
    expect(screen.getByTestId("corner-count").textContent).toBe("0 corners");
    expect((screen.getByTestId("capture") as HTMLButtonElement).disabled).toBe(true);
    cleanup();

    render(LiveCalibrationPanel, { props: { client: fakeClient({ live: vi.fn(async () => liveOf("no_frame", 0)) }), canAct: true, pollMs: 0 } });
    await waitFor(() => expect(screen.getByTestId("no-image").textContent).toContain("is the camera's driver running?"));
    expect((screen.getByTestId("capture") as HTMLButtonElement).disabled).toBe(true);
    cleanup();

    render(LiveCalibrationPanel, { props: { client: fakeClient({ cameras: vi.fn(async () => []) }), pollMs: 0 } });
    expect((await screen.findByTestId("empty")).textContent).toContain("No cameras in this run's config");
  });

  it("lets viewers watch but not capture, and switches cameras", async () => {
    const client = fakeClient();
    render(LiveCalibrationPanel, { props: { client, canAct: false, pollMs: 0 } });
    await screen.findByTestId("live-image");
    expect((screen.getByTestId("capture") as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.change(screen.getByLabelText("camera"), { target: { value: "wrist" } });
    await waitFor(() => expect(client.live).toHaveBeenLastCalledWith("wrist"));
  });

  it("shows the board and changes it: the body in metres, the views dropped reported", async () => {
    const a3: Board = { squares_x: 11, squares_y: 8, square_length_m: 0.025, marker_length_m: 0.0185, dictionary: "DICT_5X5_100" };
    const client = fakeClient({
      live: vi.fn(async () => liveOf("ok", 24, sessionWith([24, 20]))),
      setBoard: vi.fn(async (_camera: string, board: Board) => ({ views_dropped: 2, session: sessionWith([], board) })),
    });
    render(LiveCalibrationPanel, { props: { client, canAct: true, pollMs: 0 } });
    await waitFor(() => expect(screen.getByTestId("board-label").textContent).toBe("7x5 squares, 40 mm, markers 30 mm, DICT_4X4_50"));
    expect(screen.queryByTestId("board-form")).toBeNull();

    await fireEvent.click(screen.getByTestId("change-board"));
    const form = screen.getByTestId("board-form");
    expect((within(form).getByLabelText("square mm") as HTMLInputElement).value).toBe("40"); // the current board
    await fireEvent.input(within(form).getByLabelText("squares x"), { target: { value: "11" } });
    await fireEvent.input(within(form).getByLabelText("squares y"), { target: { value: "8" } });
    await fireEvent.input(within(form).getByLabelText("square mm"), { target: { value: "25" } });
    await fireEvent.input(within(form).getByLabelText("marker mm"), { target: { value: "18.5" } });
    await fireEvent.change(within(form).getByLabelText("dictionary"), { target: { value: "DICT_5X5_100" } });
    await fireEvent.submit(form);

    await waitFor(() => expect(client.setBoard).toHaveBeenCalledWith("front", a3));
    expect((await screen.findByTestId("board-notice")).textContent).toContain("2 captured views of the old board dropped");
    expect(screen.getByTestId("board-label").textContent).toBe("11x8 squares, 25 mm, markers 18.5 mm, DICT_5X5_100");
    expect(screen.queryByTestId("board-form")).toBeNull();
    expect(screen.getByTestId("no-views")).toBeTruthy();
  });

  it("shows the service's 422 for an invalid board and keeps the form and the board", async () => {
    const client = fakeClient({
      setBoard: vi.fn(async () => {
        throw new ApiError(422, ": Value error, marker_length_m 0.04 must be smaller than square_length_m 0.04");
      }),
    });
    render(LiveCalibrationPanel, { props: { client, canAct: true, pollMs: 0 } });
    await fireEvent.click(await screen.findByTestId("change-board"));
    await fireEvent.input(screen.getByLabelText("marker mm"), { target: { value: "40" } });
    await fireEvent.submit(screen.getByTestId("board-form"));
    expect((await screen.findByTestId("action-error")).textContent).toContain("marker_length_m 0.04 must be smaller than square_length_m 0.04");
    expect(client.setBoard).toHaveBeenCalledWith("front", { ...BOARD, marker_length_m: 0.04 });
    expect(screen.getByTestId("board-form")).toBeTruthy();
    expect(screen.queryByTestId("board-notice")).toBeNull();
    expect(screen.getByTestId("board-label").textContent).toBe("7x5 squares, 40 mm, markers 30 mm, DICT_4X4_50");
  });

  it("says so when the same board keeps the views", async () => {
    const client = fakeClient();
    render(LiveCalibrationPanel, { props: { client, canAct: true, pollMs: 0 } });
    await fireEvent.click(await screen.findByTestId("change-board"));
    await fireEvent.submit(screen.getByTestId("board-form"));
    expect((await screen.findByTestId("board-notice")).textContent).toBe("Board set.");
    expect(client.setBoard).toHaveBeenCalledWith("front", BOARD);
  });

  it("shows viewers the board but no way to change it", async () => {
    const client = fakeClient();
    render(LiveCalibrationPanel, { props: { client, canAct: false, pollMs: 0 } });
    expect((await screen.findByTestId("board-label")).textContent).toBe("7x5 squares, 40 mm, markers 30 mm, DICT_4X4_50");
    expect(screen.queryByTestId("change-board")).toBeNull();
    expect(screen.queryByTestId("board-form")).toBeNull();
  });

  it("polls the live view until it is removed", async () => {
    vi.useFakeTimers();
    try {
      const client = fakeClient();
      const { unmount } = render(LiveCalibrationPanel, { props: { client, canAct: true, pollMs: 500 } });
      await vi.waitFor(() => expect(client.live).toHaveBeenCalledTimes(1));
      await vi.advanceTimersByTimeAsync(500);
      expect(client.live).toHaveBeenCalledTimes(2);
      unmount();
      await vi.advanceTimersByTimeAsync(2000);
      expect(client.live).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });
});
