import { eventLabel, fmtAgo, fmtSigned } from "./format";

describe("format", () => {
  it("signs contributions with a real minus", () => {
    expect(fmtSigned(2.345)).toBe("+2.3");
    expect(fmtSigned(-0.5)).toBe("−0.5");
    expect(fmtSigned(0)).toBe("0.0");
  });
  it("names event types in words", () => {
    expect(eventLabel("lead.page_viewed")).toBe("page viewed");
  });
  it("says how long ago", () => {
    expect(fmtAgo("2026-01-01T00:00:00Z", Date.parse("2026-01-01T00:02:30Z"))).toBe("2 min ago");
  });
});
