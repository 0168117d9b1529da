// Presenter mode: scroll the page to this element once per lesson opening (`data` names the opening), and keep
// it there while the charts above it grow or are redrawn, until the presenter scrolls, clicks or types.
const TAKE_OVER = ["wheel", "touchstart", "keydown", "mousedown"];
const MARGIN_PX = 60; // below the app's header bar

export default function ({ data, parentElement }) {
  let anchor = parentElement.querySelector("div.normviz-lesson-anchor");
  if (!anchor) {
    anchor = document.createElement("div"); // a block of its own: the component's root may have no box
    anchor.className = "normviz-lesson-anchor";
    anchor.style.scrollMarginTop = `${MARGIN_PX}px`;
    parentElement.appendChild(anchor);
  }
  const held = window.normvizLesson;
  if (held && held.lesson === data) {
    held.anchor = anchor; // the same lesson, mounted again (e.g. its final draw): hold the new element
    return;
  }
  const lesson = (window.normvizLesson = { lesson: data, anchor, left: false, lost: 0 });
  const leave = () => {
    lesson.left = true;
  };
  for (const event of TAKE_OVER) addEventListener(event, leave, { capture: true });
  const hold = () => {
    lesson.lost = lesson.anchor.isConnected ? 0 : lesson.lost + 1;
    if (lesson.left || window.normvizLesson !== lesson || lesson.lost > 20) {
      for (const event of TAKE_OVER) removeEventListener(event, leave, { capture: true });
      return;
    }
    if (lesson.anchor.isConnected && Math.abs(lesson.anchor.getBoundingClientRect().top - MARGIN_PX) > 2) {
      lesson.anchor.scrollIntoView({ block: "start", behavior: "instant" });
    }
    setTimeout(hold, 250);
  };
  hold();
}
