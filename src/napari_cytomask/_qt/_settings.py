"""Settings remembered by step and parameter name.

Each step widget says which of its controls are settings with
``settings_controls() -> {parameter name: control}``; layer pickers are never
among them (layers change with every scan). Values are stored under
``"<step>/<parameter name>"``, so adding a control, opening other layers or a
file dialog cannot move a value into another control.
"""

from __future__ import annotations

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
    """Show ``stored`` (as read back from a settings store) in ``control``."""
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
    elif isinstance(control, QLineEdit):
        control.setText(str(stored))
    elif isinstance(control.value(), str):  # a composite control whose value is text
        control.setValue(str(stored))
    else:  # spin boxes and sliders: keep the control's own number type
        control.setValue(type(control.value())(float(stored)))


def changed_signal(control: QWidget):
    """The signal a control emits when the user changes its value."""
    if isinstance(control, QCheckBox):
        return control.toggled
    if isinstance(control, QComboBox):
        return control.currentTextChanged
    if isinstance(control, QLineEdit):
        return control.editingFinished
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

    def controls(self) -> dict[str, QWidget]:
        """Every remembered control by ``"<step>/<parameter name>"``."""
        return {
            f"{step}/{name}": control
            for step, widget in self.steps.items()
            for name, control in widget.settings_controls().items()
        }

    def save(self) -> None:
        """Store every remembered value."""
        self.store.beginGroup(GROUP)
        for key, control in self.controls().items():
            self.store.setValue(key, value_of(control))
        self.store.endGroup()
        self.store.sync()

    def restore(self) -> None:
        """Show the stored values; names without a stored value keep theirs.

        A step's ``MODEL_SETTINGS`` (after its ``model`` in ``settings_controls()``) were
        chosen for the stored model: when that model is gone, the model shown now keeps
        its own.
        """
        self.store.beginGroup(GROUP)
        stored = {key: self.store.value(key) for key in self.store.allKeys()}
        self.store.endGroup()
        model_kept: dict[str, bool] = {}
        for key, control in self.controls().items():
            value = stored.get(key)
            step, name = key.split("/", 1)
            if value is None or (
                name in getattr(self.steps[step], "MODEL_SETTINGS", ())
                and not model_kept.get(step, True)
            ):
                continue
            set_value(control, value)
            if name == "model":
                model_kept[step] = value_of(control) == value

    def reset(self) -> None:
        """Show every default value and forget the stored ones."""
        for key, control in self.controls().items():
            set_value(control, self.defaults[key])
        self.store.clear()
        self.store.sync()
