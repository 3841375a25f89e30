"""Settings remembered by step and parameter name.

Each step widget says which of its controls are settings with
``settings_controls() -> {parameter name: control}``; layer pickers are never
among them (layers change with every scan). Values are stored under
``"<step>/<parameter name>"``, so adding a control, opening other layers or a
file dialog cannot move a value into another control.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QSettings
from qtpy.QtWidgets import QCheckBox, QComboBox, QLineEdit, QWidget

#: Group of the settings store that holds the values by name.
GROUP = "by-name"


def value_of(control: QWidget):
    """The value a control shows (``value()`` for spin boxes and sliders; a drop-down's
    key when its entries have one, else its text)."""
    if isinstance(control, QCheckBox):
        return control.isChecked()
    if isinstance(control, QComboBox):
        key = control.currentData()
        return key if isinstance(key, str) else control.currentText()
    if isinstance(control, QLineEdit):
        return control.text()
    return control.value()


def set_value(control: QWidget, stored) -> None:
    """Show ``stored`` (as read back from a settings store) in ``control``.

    Raises
    ------
    ValueError
        When a spin box or slider is given something that is not a finite number, or a
        drop-down a choice it does not offer (a choice renamed since, a GPU not here).
    """
    if isinstance(control, QCheckBox):
        control.setChecked(stored in (True, "true", "1", 1))
    elif isinstance(control, QComboBox):
        # By key, or by the text a drop-down without keys (or an older session) stored.
        index = control.findData(str(stored))
        if index < 0:
            index = control.findText(str(stored))
        if index >= 0:
            control.setCurrentIndex(index)
        elif control.isEditable():
            control.setCurrentText(str(stored))
        else:
            raise ValueError(f"{stored!r} is not one of the choices")
    elif isinstance(control, QLineEdit):
        control.setText(str(stored))
    elif isinstance(control.value(), str):  # a composite control whose value is text
        control.setValue(str(stored))
    else:  # spin boxes and sliders: keep the control's own number type, within its range
        try:
            number = float(stored)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"{stored!r} is not a number")
        number = min(max(number, control.minimum()), control.maximum())
        control.setValue(type(control.value())(number))


def changed_signal(control: QWidget):
    """The signal a control emits when its value changes: typed, or filled in by a file
    dialog (a checkpoint chosen with Open… was not remembered); saving waits for a pause."""
    if isinstance(control, QCheckBox):
        return control.toggled
    if isinstance(control, QComboBox):
        return control.currentTextChanged
    if isinstance(control, QLineEdit):
        return control.textChanged
    return control.valueChanged


class StepSettings:
    """Save, restore and reset the settings of named steps in a ``QSettings`` store.

    Parameters
    ----------
    settings
        The store.
    steps
        ``{step name: widget}``; each widget has ``settings_controls()``.
    """

    def __init__(self, settings: QSettings, steps: dict[str, QWidget]):
        self.store = settings
        self.steps = steps
        self.defaults = {key: value_of(c) for key, c in self.controls().items()}
        #: The values as last stored or restored, and the names of those edited since:
        #: saving writes those that differ or were edited only, so two docks sharing the
        #: store keep each other's changes, and the store holds the latest edit of each
        #: (a value edited back to what this dock saved before, after another dock saved
        #: another, is written again).
        self._stored = dict(self.defaults)
        self._edited: set[str] = set()
        for key, control in self.controls().items():
            changed_signal(control).connect(lambda *_, key=key: self._edited.add(key))

    def controls(self) -> dict[str, QWidget]:
        """Every remembered control by ``"<step>/<parameter name>"``."""
        return {
            f"{step}/{name}": control
            for step, widget in self.steps.items()
            for name, control in widget.settings_controls().items()
        }

    def save(self) -> bool:
        """Store the values changed or edited since the last save, restore or reset.

        Returns
        -------
        bool
            Whether the store could be written (not a read-only or missing folder).
        """
        self.store.beginGroup(GROUP)
        for key, control in self.controls().items():
            value = value_of(control)
            if value != self._stored.get(key) or key in self._edited:
                # Kept by the store until it can be written (its next successful sync).
                self.store.setValue(key, value)
                self._stored[key] = value
        self._edited.clear()
        self.store.endGroup()
        self.store.sync()
        return self.store.status() == QSettings.Status.NoError

    def restore(self) -> list[str]:
        """Show the stored values; names without a stored value keep theirs.

        A step's ``MODEL_SETTINGS`` (after its ``model`` in ``settings_controls()``) were
        chosen for the stored model: when that model is gone, the model shown now keeps
        its own.

        Returns
        -------
        list of str
            ``"<step>/<name> (<stored value>)"`` of each stored value that could not be
            shown (not a number where one is needed): it keeps its default, and is dropped
            from the store.
        """
        self.store.beginGroup(GROUP)
        stored = {key: self.store.value(key) for key in self.store.allKeys()}
        model_kept: dict[str, bool] = {}
        unreadable = []
        for key, control in self.controls().items():
            value = stored.get(key)
            step, name = key.split("/", 1)
            if value is None or (
                name in getattr(self.steps[step], "MODEL_SETTINGS", ())
                and not model_kept.get(step, True)
            ):
                continue
            try:
                set_value(control, value)
            except ValueError:
                unreadable.append(f"{key} ({value!r})")
                self.store.remove(key)
                continue
            if name == "model":
                model_kept[step] = value_of(control) == value
        self.store.endGroup()
        self.store.sync()
        self._stored = {key: value_of(c) for key, c in self.controls().items()}
        self._edited.clear()  # shown from the store, not edited
        return unreadable

    def changed(self) -> list[str]:
        """The names (``"<step>/<name>"``) of the values shown that are not the defaults."""
        return [key for key, c in self.controls().items() if value_of(c) != self.defaults[key]]

    def reset(self) -> None:
        """Show every default value and forget the stored ones."""
        for key, control in self.controls().items():
            set_value(control, self.defaults[key])
        self.store.clear()
        self.store.sync()
        self._stored = dict(self.defaults)
        self._edited.clear()
