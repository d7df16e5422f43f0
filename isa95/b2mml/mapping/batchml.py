"""BatchML: MasterRecipe ↔ isa95.recipe (BatchProductionRecord: mapping/batchrecord.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from isa95.b2mml.mapping.trees import (
    _NUMBER,
    Tracked,
    _decimal,
    _decimal_text,
    _desc,
    _get,
    _list,
    _model,
    _parse_time,
    _put,
    _texts,
    _time,
    _where,
)
from isa95.common import Quantity
from isa95.recipe import (
    EquipmentRequirement,
    FormulaParameter,
    Operation,
    Phase,
    Procedure,
    Recipe,
    RecipeType,
    UnitProcedure,
)

_ELEMENT_TYPES = ("Procedure", "UnitProcedure", "Operation", "Phase")


_LIMITS = (("low", "LowLimit"), ("high", "HighLimit"))


def _batch_value(number: Decimal | None, unit: str | None) -> dict[str, Any]:
    return {
        "ValueString": ["" if number is None else _decimal_text(number)],
        "DataInterpretation": "Constant",
        "DataType": "decimal",
        "UnitOfMeasure": unit or "",
    }


def _parameter_tree(p: FormulaParameter) -> dict[str, Any]:
    """A formula parameter: target as value, limits as LowLimit/HighLimit sub-parameters."""
    tree: dict[str, Any] = {"ID": p.id}
    _put(tree, "Description", p.description)
    tree["ParameterType"] = "ProcessParameter"
    tree["Value"] = [_batch_value(p.target, p.unit)]
    limits = []
    for attribute, subtype in _LIMITS:
        number = getattr(p, attribute)
        if number is not None:
            limits.append(
                {
                    "ID": f"{p.id}.{attribute}",
                    "ParameterType": "ProcessParameter",
                    "ParameterSubType": [subtype],
                    "Value": [_batch_value(number, p.unit)],
                }
            )
    _put(tree, "Parameter", limits)
    return tree


def _batch_number(t: dict[str, Any], where: str) -> tuple[Decimal | None, str | None]:
    values = _list(t, "Value")
    if not values:
        return None, None
    value = values[0]
    _get(value, "DataInterpretation")
    _get(value, "DataType")
    text = (_texts(value, "ValueString") or [""])[0].strip()
    unit = _get(value, "UnitOfMeasure") or None
    if not text:
        return None, unit
    if not _NUMBER.fullmatch(text):
        value.used.discard("ValueString")  # not numeric: reported as unmapped
        return None, unit
    return _decimal(text, f"{where}/Value"), unit


def _parameter(t: dict[str, Any]) -> FormulaParameter:
    where = _where(t, "Parameter")
    target, unit = _batch_number(t, where)
    limits: dict[str, Decimal | None] = {"low": None, "high": None}
    for child in _list(t, "Parameter"):
        subtype = _get(child, "ParameterSubType")
        for attribute, name in _LIMITS:
            if subtype == name:
                _get(child, "ID")
                _get(child, "ParameterType")
                limits[attribute], child_unit = _batch_number(child, where)
                unit = unit or child_unit
    _get(t, "ParameterType")
    return _model(
        lambda: FormulaParameter(
            id=_get(t, "ID"), description=_get(t, "Description"), unit=unit, target=target, **limits
        ),
        where,
    )


def _element_tree(
    kind: str,
    element: Any,
    children: list[dict[str, Any]],
    requirement: EquipmentRequirement | None = None,
    parameters: list[FormulaParameter] | None = None,
) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": element.id}
    _put(tree, "Description", _desc(element.description))
    tree["RecipeElementType"] = kind
    if requirement is not None:
        tree["EquipmentRequirement"] = [
            {
                "ID": requirement.equipment_class_id,
                **({"Description": requirement.description} if requirement.description else {}),
            }
        ]
    _put(tree, "Parameter", [_parameter_tree(p) for p in parameters or []])
    _put(tree, "RecipeElement", children)
    return tree


def _recipe_to_tree(model: Recipe, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": model.id, "Version": model.version}
    _put(tree, "VersionDate", _time(model.version_date))
    _put(tree, "Description", _desc(model.description))
    header: dict[str, Any] = {}
    _put(header, "ProductID", model.product_id)
    _put(header, "ProductName", model.product_name)
    if model.batch_size is not None:
        header["BatchSize"] = {
            "Nominal": _decimal_text(model.batch_size.value),
            **({"UnitOfMeasure": model.batch_size.unit} if model.batch_size.unit else {}),
        }
    _put(tree, "Header", header or None)
    _put(
        tree,
        "EquipmentRequirement",
        [
            {
                "ID": r.equipment_class_id,
                **({"Description": r.description} if r.description else {}),
            }
            for r in model.equipment_requirements
        ],
    )
    if model.formula:
        tree["Formula"] = {"Parameter": [_parameter_tree(p) for p in model.formula]}
    if model.procedure is not None:
        proc = model.procedure
        tree["RecipeElement"] = [
            _element_tree(
                "Procedure",
                proc,
                [
                    _element_tree(
                        "UnitProcedure",
                        up,
                        [
                            _element_tree(
                                "Operation",
                                op,
                                [
                                    _element_tree("Phase", ph, [], parameters=ph.parameters)
                                    for ph in op.phases
                                ],
                            )
                            for op in up.operations
                        ],
                        requirement=up.equipment_requirement,
                    )
                    for up in proc.unit_procedures
                ],
            )
        ]
    return tree


def _recipe_from_tree(tree: dict[str, Any], version: str) -> Recipe:
    recipe_id = _get(tree, "ID") or ""
    recipe = _where(tree, "MasterRecipe")

    def children(t: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        found = []
        for child in _list(t, "RecipeElement"):
            if _get(child, "RecipeElementType") == kind:
                found.append(child)
        return found

    def requirement(t: dict[str, Any]) -> EquipmentRequirement | None:
        reqs = _list(t, "EquipmentRequirement")
        if not reqs:
            return None
        return EquipmentRequirement(
            equipment_class_id=_get(reqs[0], "ID") or "", description=_get(reqs[0], "Description")
        )

    procedure = None
    procs = [e for e in _list(tree, "RecipeElement") if _get(e, "RecipeElementType") == "Procedure"]
    if procs:
        p = procs[0]
        procedure = _model(
            lambda: Procedure(
                id=_get(p, "ID"),
                description=_get(p, "Description"),
                unit_procedures=[
                    UnitProcedure(
                        id=_get(up, "ID"),
                        description=_get(up, "Description"),
                        equipment_requirement=requirement(up),
                        operations=[
                            Operation(
                                id=_get(op, "ID"),
                                description=_get(op, "Description"),
                                phases=[
                                    Phase(
                                        id=_get(ph, "ID"),
                                        description=_get(ph, "Description"),
                                        parameters=[_parameter(x) for x in _list(ph, "Parameter")],
                                    )
                                    for ph in children(op, "Phase")
                                ],
                            )
                            for op in children(up, "Operation")
                        ],
                    )
                    for up in children(p, "UnitProcedure")
                ],
            ),
            f"{recipe}/RecipeElement (procedure)",
        )
    header = tree.get("Header") or Tracked({})
    batch_size = None
    size = header.get("BatchSize")
    if size:
        nominal = _get(size, "Nominal")
        if nominal:
            batch_size = Quantity(
                value=_decimal(nominal, f"{recipe}/Header/BatchSize/Nominal"),
                unit=_get(size, "UnitOfMeasure"),
            )
    formula = tree.get("Formula") or Tracked({})
    return _model(
        lambda: Recipe(
            id=recipe_id,
            version=_get(tree, "Version") or "1",
            recipe_type=RecipeType.MASTER,
            version_date=_parse_time(_get(tree, "VersionDate"), f"{recipe}/VersionDate"),
            description=_get(tree, "Description"),
            product_id=_get(header, "ProductID"),
            product_name=_get(header, "ProductName"),
            batch_size=batch_size,
            equipment_requirements=[
                EquipmentRequirement(
                    equipment_class_id=_get(r, "ID") or "", description=_get(r, "Description")
                )
                for r in _list(tree, "EquipmentRequirement")
            ],
            formula=[_parameter(x) for x in _list(formula, "Parameter")],
            procedure=procedure,
        ),
        recipe,
    )
