import { fireEvent, render, screen } from "@testing-library/svelte";
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup } from "@testing-library/svelte";
import EstopButton from "./EstopButton.svelte";

afterEach(cleanup);

describe("EstopButton", () => {
  it("presses on the Esc key anywhere, once per press", async () => {
    const press = vi.fn();
    render(EstopButton, { props: { press } });
    await fireEvent.keyDown(window, { key: "Escape" });
    expect(press).toHaveBeenCalledTimes(1);
    // Auto-repeat while the key stays down is one press, not a stream of requests.
    await fireEvent.keyDown(window, { key: "Escape", repeat: true });
    expect(press).toHaveBeenCalledTimes(1);
    await fireEvent.keyDown(window, { key: "a" });
    expect(press).toHaveBeenCalledTimes(1);
  });

  it("presses even while the operator types in a field, before the page's handlers", async () => {
    const press = vi.fn();
    const pageHandler = vi.fn();
    render(EstopButton, { props: { press } });
    const input = document.createElement("input");
    document.body.append(input);
    input.addEventListener("keydown", pageHandler);
    await fireEvent.keyDown(input, { key: "Escape" });
    expect(press).toHaveBeenCalledTimes(1);
    expect(pageHandler).not.toHaveBeenCalled();
    input.remove();
  });

  it("presses on click and stops listening once unmounted", async () => {
    const press = vi.fn();
    const { unmount } = render(EstopButton, { props: { press } });
    await fireEvent.click(screen.getByTestId("estop"));
    expect(press).toHaveBeenCalledTimes(1);
    unmount();
    await fireEvent.keyDown(window, { key: "Escape" });
    expect(press).toHaveBeenCalledTimes(1);
  });
});
