"""Settings remembered by step and parameter name.

Each step widget says which of its controls are settings with
``settings_controls() -> {parameter name: control}``; layer pickers are never
among them (layers change with every scan). Values are stored under
``"<step>/<parameter name>"``, so adding a control, opening other layers or a
file dialog cannot move a value into another control. A step's ``MODEL_SETTINGS``
belong to its model's file: they are stored together, with that file, under
``"<step>/model_settings"`` (see ``typed_model_settings`` of the U-Net step).
"""

from __future__ import annotations

import json
import math

from qtpy.QtCore import QSettings
from qtpy.QtWidgets import QCheckBox, QComboBox, QLineEdit, QWidget

#: Group of the settings store that holds the values by name.
GROUP = "by-name"
#: Name of the entry that holds a step's ``MODEL_SETTINGS`` typed for its model's file.
MODEL_ENTRY = "model_settings"


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
        When a spin box or slider is given something that is not a finite number or is
        outside its range (a range narrowed since, a hand-edited file), or a drop-down a
        choice it does not offer (a choice renamed since, a GPU not here).
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
    else:  # spin boxes and sliders: keep the control's own number type
        try:
            number = float(stored)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"{stored!r} is not a number")
        if not control.minimum() <= number <= control.maximum():
            raise ValueError(f"{stored!r} is outside {control.minimum()}–{control.maximum()}")
        control.setValue(type(control.value())(number))


def label_of(control: QWidget) -> str:
    """The name a user reads for a control: its row's, as screen readers say it (set on
    the control or on its part that takes the focus), or a check box's own text."""
    for part in (control, *control.findChildren(QWidget)):
        if part.accessibleName():
            return part.accessibleName()
    return control.text() if isinstance(control, QCheckBox) else ""


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
    titles
        ``{step name: title}``: where the user finds a step's settings, for the names of
        those that :meth:`restore` could not show.
    """

    def __init__(self, settings: QSettings, steps: dict[str, QWidget], titles: dict[str, str]):
        self.store = settings
        self.titles = titles
        #: Whether :meth:`restore` could not read the store's file in full (damaged, or no
        #: settings file): the values it could not read show their defaults.
        self.damaged = False
        self.steps = steps
        self.defaults = {key: value_of(c) for key, c in self.controls().items()}
        #: The entries edited since the last save, restore or reset: saving writes those
        #: only, so two docks sharing the store keep each other's changes, the store holds
        #: the latest edit of each, and a value a step shows with its signals blocked (a
        #: suggestion, such as the export folder beside the data) is not remembered.
        self._edited: set[str] = set()
        for key, control in self.controls().items():
            entry = self._entry(key)
            changed_signal(control).connect(lambda *_, entry=entry: self._edited.add(entry))

    def controls(self) -> dict[str, QWidget]:
        """Every remembered control by ``"<step>/<parameter name>"``."""
        return {
            f"{step}/{name}": control
            for step, widget in self.steps.items()
            for name, control in widget.settings_controls().items()
        }

    def _entry(self, key: str) -> str:
        """The store's entry that holds the control of ``key``: its own, or its step's
        ``MODEL_ENTRY`` for a model setting."""
        step, name = key.split("/", 1)
        if name in getattr(self.steps[step], "MODEL_SETTINGS", ()):
            return f"{step}/{MODEL_ENTRY}"
        return key

    def _title(self, key: str) -> str:
        return self.titles[key.split("/", 1)[0]]

    def _shown(self) -> dict:
        """The value of every entry as the controls show it (a step's ``MODEL_ENTRY``: the
        model settings typed for its model's file as JSON, ``None`` when they are the
        model's own)."""
        shown = {key: value_of(c) for key, c in self.controls().items() if self._entry(key) == key}
        for step, widget in self.steps.items():
            if getattr(widget, "MODEL_SETTINGS", ()):
                typed = widget.typed_model_settings()
                shown[f"{step}/{MODEL_ENTRY}"] = (
                    None if typed is None else json.dumps(typed, sort_keys=True)
                )
        return shown

    def save(self) -> bool:
        """Store the values edited since the last save, restore or reset.

        Returns
        -------
        bool
            Whether the store could be written (not a read-only or missing folder). A
            file that could not be read (:attr:`damaged`) is written anew: Qt keeps saying
            so after it is.
        """
        self.store.beginGroup(GROUP)
        shown = self._shown()
        for key in self._edited:
            # Kept by the store until it can be written (its next successful sync).
            if shown[key] is None:
                self.store.remove(key)
            else:
                self.store.setValue(key, shown[key])
        self._edited.clear()
        self.store.endGroup()
        self.store.sync()
        return self.store.status() != QSettings.Status.AccessError

    def restore(self) -> list[str]:
        """Show the stored values; names without a stored value keep theirs.

        A step's ``MODEL_SETTINGS`` are shown by its ``use_typed_model_settings``, which
        keeps those of the model shown unless they were typed for its file as it is now.

        Returns
        -------
        list of str
            ``"<step title> > <control's label> (<stored value>)"`` of each stored value
            that could not be shown (not a number where one is needed, out of range, a
            model file gone): it keeps its default, and is dropped from the store.
        """
        # Qt reads the file's text when it is first asked for every key, and says then
        # whether it could.
        self.store.allKeys()
        self.damaged = self.store.status() == QSettings.Status.FormatError
        self.store.beginGroup(GROUP)
        stored = {key: self.store.value(key) for key in self.store.allKeys()}
        unreadable = []
        for key, control in self.controls().items():
            value = stored.get(key)
            if value is None:
                continue
            if self._entry(key) != key:
                # Stored apart from the model's file by older versions: not known to have
                # been chosen for the model shown.
                self.store.remove(key)
                continue
            try:
                set_value(control, value)
            except ValueError:
                unreadable.append(f"{self._title(key)} > {label_of(control)} ({value!r})")
                self.store.remove(key)
        for step, widget in self.steps.items():
            key = f"{step}/{MODEL_ENTRY}"
            value = stored.get(key)
            if value is None or not getattr(widget, "MODEL_SETTINGS", ()):
                continue
            try:
                widget.use_typed_model_settings(json.loads(str(value)))
            except ValueError:
                unreadable.append(f"{self._title(key)} > model thresholds ({value!r})")
                self.store.remove(key)
        self.store.endGroup()
        self.store.sync()
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
        self._edited.clear()
