// The dashboard's views: one tab per <main data-view>, chosen by the URL's hash (#campaigns),
// so a view can be linked to and the back button works. A new view is a <main data-view="x">,
// a link to #x in <nav id="tabs">, and a module that listens for `bz:view` (detail: the name)
// to load what it shows when it is shown.

const DEFAULT_VIEW = 'numbers';
let signedIn = false;

function current() {
  const name = location.hash.replace(/^#/, '');
  return document.querySelector(`main[data-view="${CSS.escape(name)}"]`) ? name : DEFAULT_VIEW;
}

function show() {
  const name = current();
  document.getElementById('tabs').hidden = !signedIn;
  for (const main of document.querySelectorAll('main[data-view]')) {
    main.hidden = !signedIn || main.dataset.view !== name;
  }
  for (const a of document.querySelectorAll('#tabs a[data-tab]')) {
    if (a.dataset.tab === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (signedIn) document.dispatchEvent(new CustomEvent('bz:view', { detail: name }));
}

document.addEventListener('bz:session', () => { signedIn = true; show(); });
document.addEventListener('bz:signout', () => { signedIn = false; queueMicrotask(show); });
window.addEventListener('hashchange', show);
