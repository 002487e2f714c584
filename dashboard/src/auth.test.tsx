import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { getApiKey, setApiKey } from "./api/client";
import { SignIn, takeKeyFromAddress } from "./auth";

afterEach(() => {
  setApiKey(null);
  vi.unstubAllGlobals();
});

describe("takeKeyFromAddress", () => {
  it("keeps the key for this tab only and removes it from the address", () => {
    window.history.replaceState(null, "", "/leads/x#key=lsk_abc_123");
    expect(takeKeyFromAddress()).toBe(true);
    expect(window.location.hash).toBe("");
    expect(window.location.pathname).toBe("/leads/x");
    expect(sessionStorage.getItem("leadscore.apiKey")).toBe("lsk_abc_123");
    expect(localStorage.getItem("leadscore.apiKey")).toBeNull();
  });

  it("does nothing without a key in the address", () => {
    window.history.replaceState(null, "", "/#section");
    expect(takeKeyFromAddress()).toBe(false);
    expect(getApiKey()).toBeNull();
  });
});

describe("SignIn", () => {
  it("checks the key with the API before keeping it, and says why it was refused", async () => {
    const fetch = vi.fn(async (_url: string, init: RequestInit) => {
      const key = (init.headers as Record<string, string>)["X-API-Key"];
      return key === "good"
        ? new Response(JSON.stringify({ id: "k", name: "dash", scopes: ["read"], allows: {} }), { status: 200 })
        : new Response(JSON.stringify({ error: { code: "unauthenticated", message: "unknown key" } }), { status: 401 });
    });
    vi.stubGlobal("fetch", fetch);
    render(<SignIn />);
    const input = screen.getByLabelText("API key");
    await userEvent.type(input, "bad");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("not known or was revoked");
    expect(getApiKey()).toBeNull();
    await userEvent.clear(input);
    await userEvent.type(input, "good");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await vi.waitFor(() => expect(getApiKey()).toBe("good"));
    expect(fetch).toHaveBeenCalledWith("/v1/whoami", expect.anything());
  });
});
