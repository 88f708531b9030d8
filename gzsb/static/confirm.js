// Forms with data-confirm ask before submitting (the Content-Security-Policy allows no inline handlers).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
