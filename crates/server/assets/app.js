// Latchkey console: the few things plain forms cannot do. Every page works without this
// file; with it, the show-once dialog is modal and copies the secret, destructive actions
// are confirmed in an in-page alert dialog, the expiry presets offer what the chosen type
// allows (and show Expires in (days) only for Custom), and focus goes where a keyboard
// user expects.
(function () {
  'use strict';

  function fallbackCopy(input) {
    input.focus();
    input.select();
    try {
      return document.execCommand('copy');
    } catch (e) {
      return false;
    }
  }

  function initSecretDialog() {
    var dialog = document.getElementById('secret-dialog');
    if (!dialog) {
      return;
    }
    var input = document.getElementById('secret-token');
    var copyButton = document.getElementById('copy-button');
    var status = document.getElementById('copy-status');
    var doneForm = document.getElementById('secret-done-form');
    var pageUrl = dialog.getAttribute('data-page-url');

    // The secret must not come back: a reload now asks for the page, not the form post.
    if (pageUrl && window.history && typeof window.history.replaceState === 'function') {
      try {
        window.history.replaceState(null, '', pageUrl);
      } catch (e) {
        // Keep going: the dialog still works.
      }
    }
    if (typeof dialog.showModal === 'function') {
      if (dialog.open) {
        dialog.close();
      }
      dialog.showModal();
    }
    input.focus();
    input.select();

    copyButton.addEventListener('click', function () {
      var report = function (ok) {
        status.textContent = ok
          ? 'Copied to the clipboard.'
          : 'Could not copy: select the secret and copy it yourself.';
      };
      if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function') {
        navigator.clipboard.writeText(input.value).then(
          function () { report(true); },
          function () { report(fallbackCopy(input)); }
        );
      } else {
        report(fallbackCopy(input));
      }
    });

    var finish = function (event) {
      if (event) {
        event.preventDefault();
      }
      // Take the secret out of the page, not only out of view.
      input.value = '';
      input.removeAttribute('value');
      if (dialog.open) {
        dialog.close();
      }
      dialog.remove();
      var main = document.getElementById('main');
      if (main) {
        main.focus();
      }
    };
    doneForm.addEventListener('submit', finish);
    dialog.addEventListener('cancel', finish);
  }

  function initConfirm() {
    var dialog = document.getElementById('confirm-dialog');
    var useDialog = dialog && typeof dialog.showModal === 'function';
    var message = document.getElementById('confirm-message');
    var ok = document.getElementById('confirm-ok');
    var cancel = document.getElementById('confirm-cancel');
    var graceBox = document.getElementById('confirm-grace');
    var graceSelect = document.getElementById('confirm-grace-select');
    var pending = null;
    var opener = null;

    document.addEventListener('submit', function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-confirm')) {
        return;
      }
      event.preventDefault();
      var text = form.getAttribute('data-confirm');
      var verb = form.getAttribute('data-confirm-verb') || 'Confirm';
      if (!useDialog) {
        if (window.confirm(text)) {
          form.submit();
        }
        return;
      }
      pending = form;
      opener = event.submitter || document.activeElement;
      message.textContent = text;
      ok.textContent = verb;
      var grace = form.getAttribute('data-grace');
      graceBox.hidden = !grace;
      graceSelect.value = '0';
      dialog.showModal();
      cancel.focus();
    }, true);

    if (!useDialog) {
      return;
    }
    ok.addEventListener('click', function () {
      var form = pending;
      pending = null;
      if (!form) {
        dialog.close();
        return;
      }
      var grace = form.getAttribute('data-grace');
      if (grace && form.elements[grace]) {
        form.elements[grace].value = graceSelect.value;
      }
      dialog.close();
      form.submit();
    });
    cancel.addEventListener('click', function () {
      dialog.close();
    });
    dialog.addEventListener('close', function () {
      if (pending) {
        pending = null;
        if (opener && typeof opener.focus === 'function') {
          opener.focus();
        }
      }
    });
  }

  // Expiration presets: only those the chosen Type allows (personal tokens must expire and
  // live at most the org's TTL); Expires in (days) only for Custom. Without this script
  // both fields show, and a number in Expires in (days) wins over the preset.
  function initExpiry() {
    var selects = document.querySelectorAll('select[data-expiry-for]');
    Array.prototype.forEach.call(selects, function (select) {
      var field = document.getElementById(select.getAttribute('data-expiry-for'));
      var input = field ? field.querySelector('input') : null;
      if (!field || !input) {
        return;
      }
      var typeControl = select.form ? select.form.elements.namedItem('type') : null;
      var touched = false;
      var kind = function () {
        var type = typeControl ? typeControl.value : 'personal';
        return type === 'personal' ? 'personal' : 'workspace';
      };
      var syncCustom = function () {
        var custom = select.value === 'custom';
        field.hidden = !custom;
        input.disabled = !custom;
      };
      var syncType = function (typeChanged) {
        var k = kind();
        Array.prototype.forEach.call(select.options, function (option) {
          var kinds = (option.getAttribute('data-kinds') || '').split(' ');
          var allowed = kinds.indexOf(k) >= 0;
          option.disabled = !allowed;
          option.hidden = !allowed;
        });
        var current = select.options[select.selectedIndex];
        if (!current || current.disabled || (typeChanged && !touched)) {
          select.value = k === 'personal' ? select.getAttribute('data-personal-default') : 'none';
        }
        syncCustom();
      };
      select.addEventListener('change', function () {
        touched = true;
        syncCustom();
      });
      if (typeControl && typeControl.tagName === 'SELECT') {
        typeControl.addEventListener('change', function () { syncType(true); });
      }
      syncType(false);
    });
  }

  // Copy (a recoverable token's secret, as Unleash's copy button does): asks the API for
  // the secret and puts it on the clipboard without it ever entering the page. Without
  // script, or when the clipboard refuses, the form posts and the secret dialog shows it.
  function initRevealCopy() {
    document.querySelectorAll('form[data-reveal-copy]').forEach(function (form) {
      var status = document.getElementById(form.getAttribute('data-copy-status'));
      form.addEventListener('submit', function (event) {
        if (!window.fetch || !navigator.clipboard || typeof navigator.clipboard.writeText !== 'function') {
          return;
        }
        event.preventDefault();
        var say = function (text) { if (status) { status.textContent = text; } };
        say('');
        window.fetch('/api/v1/tokens/' + encodeURIComponent(form.getAttribute('data-reveal-copy')) + '/reveal', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': form.elements.csrf_token.value },
          body: '{}'
        }).then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) {
              say('Could not copy: ' + ((body && body.error && body.error.message) || response.status) + '.');
              return;
            }
            return navigator.clipboard.writeText(body.token).then(
              function () { say('Copied to the clipboard.'); },
              function () { form.submit(); }
            );
          });
        }).catch(function () { form.submit(); });
      });
    });
  }

  function init() {
    initSecretDialog();
    initConfirm();
    initExpiry();
    initRevealCopy();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
}());
