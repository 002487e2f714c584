import { fireEvent, render, screen, within } from "@testing-library/react";
import { MemoryRouter } from "react-router-dom";

import { scoreEvent } from "../test/leadscoreApi";
import { NewestChanges } from "./NewestChanges";

function renderList(events: ReturnType<typeof scoreEvent>[]) {
  return render(
    <MemoryRouter>
      <NewestChanges events={events} />
    </MemoryRouter>,
  );
}

describe("<NewestChanges>", () => {
  it("shows old → new score, the grade change, the top change and links to the lead", () => {
    renderList([scoreEvent()]);
    const item = screen.getByTestId("change-item");
    expect(item).toHaveAttribute("data-lead-id", "sim-6b09b2d7-0-000102");
    expect(item).toHaveAttribute("data-event-id", "sc_8b7310dff0982258f5ccf7f7");
    expect(item).toHaveTextContent("77");
    expect(item).toHaveTextContent("83");
    expect(item.querySelector(".change-score")).toHaveClass("up");
    expect(within(item).getByText("B")).toHaveClass("grade", "B");
    expect(within(item).getByText("A")).toHaveClass("grade", "A");
    expect(item).toHaveTextContent("26 minutes on calls +9.8");
    expect(within(item).getByRole("link")).toHaveAttribute("href", "/leads/sim-6b09b2d7-0-000102");
  });

  it("uses the top reason for a first score and marks a drop", () => {
    renderList([
      scoreEvent({ id: "sc_1", score: 31, previous_score: 36, grade: "D", previous_grade: "D", changes: [{ feature: "meetings", label: "1 meeting held", contribution: 1, previous_contribution: 6.3, delta: -5.3 }] }),
      scoreEvent({ id: "sc_2", lead_id: "lead-new", previous_score: null, previous_grade: null, changes: [] }),
    ]);
    const [drop, first] = screen.getAllByTestId("change-item");
    expect(drop.querySelector(".change-score")).toHaveClass("down");
    expect(drop).toHaveTextContent("1 meeting held −5.3");
    expect(drop.querySelectorAll(".grade")).toHaveLength(1); // D → D: no grade change shown
    expect(first).toHaveAttribute("data-lead-id", "lead-new");
    expect(first).toHaveTextContent("new");
    expect(first).toHaveTextContent("first score · web and email activity recently (76.6, 7-day half-life) +23.5");
  });

  it("holds the list still while the pointer is on it", () => {
    const { rerender } = renderList([scoreEvent({ id: "sc_old" })]);
    fireEvent.mouseEnter(screen.getByRole("list"));
    rerender(
      <MemoryRouter>
        <NewestChanges events={[scoreEvent({ id: "sc_new" }), scoreEvent({ id: "sc_old" })]} />
      </MemoryRouter>,
    );
    expect(screen.getAllByTestId("change-item").map((i) => i.dataset.eventId)).toEqual(["sc_old"]);
    expect(screen.getByText(/1 newer/)).toBeInTheDocument();
    fireEvent.mouseLeave(screen.getByRole("list"));
    expect(screen.getAllByTestId("change-item").map((i) => i.dataset.eventId)).toEqual(["sc_new", "sc_old"]);
  });

  it("waits for the feed when nothing came yet", () => {
    render(
      <MemoryRouter>
        <NewestChanges events={[]} />
      </MemoryRouter>,
    );
    expect(screen.getByTestId("newest-changes")).toHaveTextContent("Waiting for score changes");
  });
});
