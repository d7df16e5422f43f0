"""BatchML recipes: MasterRecipe (bare or in BatchInformation) ↔ isa95.recipe.

Read from the generated bindings through :func:`isa95.b2mml.mapping.trees.from_binding`:
the procedural hierarchy (a ``Procedure`` recipe element with nested
UnitProcedure › Operation › Phase elements), every other recipe element, the
procedure logic (steps, links, transitions) at each level, formula parameters
with their DataType and lexical value, and the BatchInformation's equipment
elements.
"""

from __future__ import annotations

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
    _source,
    _texts,
    _time,
    _unread,
    _where,
)
from isa95.common import Quantity
from isa95.errors import B2MMLError
from isa95.recipe import (
    Constraint,
    EquipmentConnection,
    EquipmentElement,
    EquipmentProceduralElement,
    EquipmentRequirement,
    FormulaParameter,
    Link,
    LinkEnd,
    Operation,
    Phase,
    Procedure,
    ProcedureLogic,
    Recipe,
    RecipeElement,
    RecipeType,
    Step,
    Transition,
    UnitProcedure,
)

_LIMITS = (("low", "LowLimit"), ("high", "HighLimit"))

# ------------------------------------------------------------------ parameters


def _batch_value(
    text: str | None, data_type: str, interpretation: str, unit: str | None
) -> dict[str, Any]:
    return {
        "ValueString": [text or ""],
        "DataInterpretation": interpretation,
        "DataType": data_type,
        "UnitOfMeasure": unit or "",
    }


def _parameter_tree(p: FormulaParameter) -> dict[str, Any]:
    """A formula parameter: its value as written (or the target written out), its
    DataType, and limits as LowLimit/HighLimit sub-parameters."""
    tree: dict[str, Any] = {"ID": p.id}
    _put(tree, "Description", p.description)
    tree["ParameterType"] = p.parameter_type
    _put(tree, "ParameterSubType", list(p.subtypes))
    text = p.value
    if text is None and p.target is not None:
        text = _decimal_text(p.target)
    if (
        text is not None
        or p.unit is not None
        or p.data_type != "decimal"
        or p.interpretation != "Constant"
    ):
        tree["Value"] = [_batch_value(text, p.data_type, p.interpretation, p.unit)]
    limits = []
    for attribute, subtype in _LIMITS:
        number = getattr(p, attribute)
        if number is not None:
            limits.append(
                {
                    "ID": getattr(p, f"{attribute}_id") or f"{p.id}.{attribute}",
                    "ParameterType": getattr(p, f"{attribute}_parameter_type")
                    or "ProcessParameter",
                    "ParameterSubType": [subtype],
                    "Value": [_batch_value(_decimal_text(number), p.data_type, "Constant", p.unit)],
                }
            )
    _put(tree, "Parameter", limits)
    return tree


def _batch_value_of(t: dict[str, Any], where: str) -> dict[str, Any]:
    """Fields of a parameter's first Value: target (a number), value (as written when the
    target does not say it exactly), data type, interpretation and unit."""
    values = _list(t, "Value")
    fields: dict[str, Any] = {"target": None, "value": None, "unit": None}
    if not values:
        return fields
    value = values[0]
    strings = _list(value, "ValueString")
    if len(strings) > 1:
        _unread(value, "ValueString")  # several values: listed as unmapped
    text = (_texts(value, "ValueString") or [""])[0]
    fields["data_type"] = _get(value, "DataType") or "decimal"
    fields["interpretation"] = _get(value, "DataInterpretation") or "Constant"
    fields["unit"] = _get(value, "UnitOfMeasure") or None
    stripped = text.strip()
    if stripped and _NUMBER.fullmatch(stripped):
        target = _decimal(stripped, f"{where}/Value")
        fields["target"] = target
        if text != _decimal_text(target):
            fields["value"] = text
    elif text:
        fields["value"] = text
    return fields


def _limit_as_written(child: dict[str, Any], found: dict[str, Any], fields: dict[str, Any]) -> None:
    """List what a limit's Value says that the writer would not write back the same:
    its text (kept only as a number), DataType, DataInterpretation or unit."""
    values = _list(child, "Value")
    if not values:
        return
    if (
        found["value"] is not None
        or found.get("data_type") != fields.get("data_type", "decimal")
        or found.get("interpretation") != "Constant"
        or (found["unit"] is not None and fields["unit"] not in (None, found["unit"]))
    ):
        _unread(child, "Value")


def _parameter(t: dict[str, Any]) -> FormulaParameter:
    where = _where(t, "Parameter")
    fields = _batch_value_of(t, where)
    limits: dict[str, Any] = {"low": None, "high": None}
    own_id = _get(t, "ID")
    for child in _list(t, "Parameter"):
        subtype = _get(child, "ParameterSubType")
        if subtype not in dict(_LIMITS).values():
            _unread(child, "ParameterSubType")  # not a limit: the child is listed whole
        for attribute, name in _LIMITS:
            if subtype == name:
                found = _batch_value_of(child, where)
                if found["target"] is None:  # no number: not a limit the model carries
                    for key in ("ID", "ParameterType", "ParameterSubType", "Value"):
                        _unread(child, key)
                    continue
                limit_id = _get(child, "ID")
                limits[f"{attribute}_id"] = (
                    None if limit_id == f"{own_id}.{attribute}" else limit_id
                )
                kind = _get(child, "ParameterType")
                limits[f"{attribute}_parameter_type"] = None if kind == "ProcessParameter" else kind
                limits[attribute] = found["target"]
                _limit_as_written(child, found, fields)
                fields["unit"] = fields["unit"] or found["unit"]
    return _model(
        lambda: FormulaParameter(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            parameter_type=_get(t, "ParameterType") or "ProcessParameter",
            subtypes=_texts(t, "ParameterSubType"),
            **fields,
            **limits,
        ),
        where,
        t,
    )


# ------------------------------------------------------------------ procedure logic


def _end_tree(end: LinkEnd, prefix: str) -> dict[str, Any]:
    return {f"{prefix}IDValue": end.id, f"{prefix}Type": end.type, "IDScope": end.scope}


def _logic_tree(logic: ProcedureLogic | None) -> dict[str, Any] | None:
    if logic is None:
        return None
    tree: dict[str, Any] = {}
    links = []
    for link in logic.links:
        lt: dict[str, Any] = {"ID": link.id}
        _put(lt, "FromID", [_end_tree(e, "From") for e in link.from_ids])
        _put(lt, "ToID", [_end_tree(e, "To") for e in link.to_ids])
        lt["LinkType"] = link.link_type
        lt["Depiction"] = link.depiction
        _put(lt, "EvaluationOrder", link.evaluation_order)
        _put(lt, "Description", _desc(link.description))
        links.append(lt)
    _put(tree, "Link", links)
    steps = []
    for step in logic.steps:
        st: dict[str, Any] = {
            "ID": step.id,
            "RecipeElementID": step.recipe_element_id,
            "RecipeElementVersion": step.recipe_element_version,
        }
        _put(st, "Description", _desc(step.description))
        steps.append(st)
    _put(tree, "Step", steps)
    transitions = []
    for transition in logic.transitions:
        tt: dict[str, Any] = {"ID": transition.id, "Condition": transition.condition}
        _put(tt, "ConditionAnnotation", transition.annotation)
        _put(tt, "Description", _desc(transition.description))
        transitions.append(tt)
    _put(tree, "Transition", transitions)
    return tree


def _end(t: dict[str, Any], prefix: str) -> LinkEnd:
    return _model(
        lambda: LinkEnd(
            id=_get(t, f"{prefix}IDValue") or "",
            type=_get(t, f"{prefix}Type"),
            scope=_get(t, "IDScope"),
        ),
        _where(t, f"{prefix}ID"),
        t,
    )


def _logic(t: dict[str, Any] | None) -> ProcedureLogic | None:
    if t is None:
        return None

    def link(x: dict[str, Any]) -> Link:
        return _model(
            lambda: Link(
                id=_get(x, "ID"),
                from_ids=[_end(e, "From") for e in _list(x, "FromID")],
                to_ids=[_end(e, "To") for e in _list(x, "ToID")],
                link_type=_get(x, "LinkType"),
                depiction=_get(x, "Depiction"),
                evaluation_order=_get(x, "EvaluationOrder"),
                description=_get(x, "Description"),
            ),
            _where(x, "Link"),
            x,
        )

    def step(x: dict[str, Any]) -> Step:
        return _model(
            lambda: Step(
                id=_get(x, "ID"),
                recipe_element_id=_get(x, "RecipeElementID") or "",
                recipe_element_version=_get(x, "RecipeElementVersion") or "",
                description=_get(x, "Description"),
            ),
            _where(x, "Step"),
            x,
        )

    def transition(x: dict[str, Any]) -> Transition:
        return _model(
            lambda: Transition(
                id=_get(x, "ID"),
                condition=_get(x, "Condition") or "",
                annotation=_get(x, "ConditionAnnotation"),
                description=_get(x, "Description"),
            ),
            _where(x, "Transition"),
            x,
        )

    return _model(
        lambda: ProcedureLogic(
            links=[link(x) for x in _list(t, "Link")],
            steps=[step(x) for x in _list(t, "Step")],
            transitions=[transition(x) for x in _list(t, "Transition")],
        ),
        _where(t, "ProcedureLogic"),
        t,
    )


# ------------------------------------------------------------------ recipe elements


def _requirement_tree(r: EquipmentRequirement) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": r.equipment_class_id}
    constraints = []
    for c in r.constraints:
        ct: dict[str, Any] = {}
        _put(ct, "ID", c.id)
        _put(ct, "Condition", c.condition)
        constraints.append(ct)
    _put(tree, "Constraint", constraints)
    _put(tree, "Description", r.description)
    return tree


def _requirement(t: dict[str, Any]) -> EquipmentRequirement:
    return _model(
        lambda: EquipmentRequirement(
            equipment_class_id=_get(t, "ID") or "",
            description=_get(t, "Description"),
            constraints=[
                _source(Constraint(id=_get(c, "ID"), condition=_get(c, "Condition")), c)
                for c in _list(t, "Constraint")
            ],
        ),
        _where(t, "EquipmentRequirement"),
        t,
    )


def _element_tree(
    kind: str,
    element: Any,
    children: list[dict[str, Any]],
    requirements: list[EquipmentRequirement] | None = None,
    parameters: list[FormulaParameter] | None = None,
) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": element.id}
    _put(tree, "Version", getattr(element, "version", None))
    _put(tree, "Description", _desc(element.description))
    tree["RecipeElementType"] = kind
    _put(tree, "ActualEquipmentID", list(getattr(element, "actual_equipment_ids", [])))
    _put(tree, "EquipmentRequirement", [_requirement_tree(r) for r in requirements or []])
    _put(tree, "Parameter", [_parameter_tree(p) for p in parameters or []])
    _put(tree, "ProcedureLogic", _logic_tree(getattr(element, "procedure_logic", None)))
    extra = [_generic_tree(e) for e in getattr(element, "elements", [])]
    _put(tree, "RecipeElement", children + extra)
    return tree


def _generic_tree(e: RecipeElement) -> dict[str, Any]:
    return _element_tree(e.element_type, e, [], e.equipment_requirements, e.parameters)


def _generic(t: dict[str, Any]) -> RecipeElement:
    return _model(
        lambda: RecipeElement(
            id=_get(t, "ID"),
            element_type=_get(t, "RecipeElementType"),
            version=_get(t, "Version"),
            description=_get(t, "Description"),
            actual_equipment_ids=_texts(t, "ActualEquipmentID"),
            equipment_requirements=[_requirement(r) for r in _list(t, "EquipmentRequirement")],
            parameters=[_parameter(p) for p in _list(t, "Parameter")],
            procedure_logic=_logic(t.get("ProcedureLogic")),
            elements=[_generic(c) for c in _list(t, "RecipeElement")],
        ),
        _where(t, "RecipeElement"),
        t,
    )


def _split(t: dict[str, Any], kind: str) -> tuple[list[dict[str, Any]], list[RecipeElement]]:
    """Child recipe elements of ``kind`` (the next level) and the others, as generic ones."""
    typed: list[dict[str, Any]] = []
    others: list[RecipeElement] = []
    for child in _list(t, "RecipeElement"):
        if _get(child, "RecipeElementType") == kind:
            typed.append(child)
        else:
            others.append(_generic(child))
    return typed, others


def _phase(t: dict[str, Any]) -> Phase:
    return _model(
        lambda: Phase(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            parameters=[_parameter(x) for x in _list(t, "Parameter")],
        ),
        _where(t, "Phase"),
        t,
    )


def _operation(t: dict[str, Any]) -> Operation:
    phases, others = _split(t, "Phase")
    return _model(
        lambda: Operation(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            phases=[_phase(p) for p in phases],
            procedure_logic=_logic(t.get("ProcedureLogic")),
            elements=others,
        ),
        _where(t, "Operation"),
        t,
    )


def _unit_procedure(t: dict[str, Any]) -> UnitProcedure:
    operations, others = _split(t, "Operation")
    requirements = _list(t, "EquipmentRequirement")
    if len(requirements) > 1:
        _unread(t, "EquipmentRequirement")  # the model carries one: listed as unmapped
    return _model(
        lambda: UnitProcedure(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            equipment_requirement=_requirement(requirements[0]) if requirements else None,
            operations=[_operation(o) for o in operations],
            procedure_logic=_logic(t.get("ProcedureLogic")),
            elements=others,
        ),
        _where(t, "UnitProcedure"),
        t,
    )


def _procedure(t: dict[str, Any]) -> Procedure:
    units, others = _split(t, "UnitProcedure")
    return _model(
        lambda: Procedure(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            unit_procedures=[_unit_procedure(u) for u in units],
            procedure_logic=_logic(t.get("ProcedureLogic")),
            elements=others,
        ),
        _where(t, "Procedure"),
        t,
    )


def _procedure_tree(proc: Procedure) -> dict[str, Any]:
    return _element_tree(
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
                requirements=[up.equipment_requirement] if up.equipment_requirement else None,
            )
            for up in proc.unit_procedures
        ],
    )


# ------------------------------------------------------------------ equipment elements


def _equipment_element_tree(e: EquipmentElement) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": e.id}
    _put(tree, "Description", _desc(e.description))
    tree["EquipmentElementType"] = e.element_type
    tree["EquipmentElementLevel"] = e.level
    procedural = []
    for p in e.procedural_elements:
        pt: dict[str, Any] = {"ID": p.id}
        _put(pt, "Description", _desc(p.description))
        pt["EquipmentProceduralElementType"] = p.element_type
        _put(pt, "EquipmentProceduralElementClassID", p.class_id)
        _put(pt, "Parameter", [_parameter_tree(x) for x in p.parameters])
        procedural.append(pt)
    _put(tree, "EquipmentProceduralElement", procedural)
    connections = []
    for c in e.connections:
        ct: dict[str, Any] = {"ID": c.id}
        _put(ct, "Description", _desc(c.description))
        ct["ConnectionType"] = c.connection_type
        _put(ct, "FromEquipmentID", list(c.from_equipment_ids))
        _put(ct, "ToEquipmentID", list(c.to_equipment_ids))
        connections.append(ct)
    _put(tree, "EquipmentConnection", connections)
    _put(tree, "EquipmentElement", [_equipment_element_tree(c) for c in e.children])
    return tree


def _equipment_element(t: dict[str, Any]) -> EquipmentElement:
    def procedural(p: dict[str, Any]) -> EquipmentProceduralElement:
        return _model(
            lambda: EquipmentProceduralElement(
                id=_get(p, "ID"),
                description=_get(p, "Description"),
                element_type=_get(p, "EquipmentProceduralElementType"),
                class_id=_get(p, "EquipmentProceduralElementClassID"),
                parameters=[_parameter(x) for x in _list(p, "Parameter")],
            ),
            _where(p, "EquipmentProceduralElement"),
            p,
        )

    def connection(c: dict[str, Any]) -> EquipmentConnection:
        return _model(
            lambda: EquipmentConnection(
                id=_get(c, "ID"),
                description=_get(c, "Description"),
                connection_type=_get(c, "ConnectionType"),
                from_equipment_ids=_texts(c, "FromEquipmentID"),
                to_equipment_ids=_texts(c, "ToEquipmentID"),
            ),
            _where(c, "EquipmentConnection"),
            c,
        )

    return _model(
        lambda: EquipmentElement(
            id=_get(t, "ID") or "",
            description=_get(t, "Description"),
            element_type=_get(t, "EquipmentElementType"),
            level=_get(t, "EquipmentElementLevel"),
            procedural_elements=[procedural(p) for p in _list(t, "EquipmentProceduralElement")],
            connections=[connection(c) for c in _list(t, "EquipmentConnection")],
            children=[_equipment_element(c) for c in _list(t, "EquipmentElement")],
        ),
        _where(t, "EquipmentElement"),
        t,
    )


# ------------------------------------------------------------------ recipes


_ELEMENTS = {RecipeType.MASTER: "MasterRecipe", RecipeType.CONTROL: "ControlRecipe"}


def _recipe_element(model: Recipe) -> str:
    """The BatchML element of a recipe: MasterRecipe or ControlRecipe."""
    name = _ELEMENTS.get(model.recipe_type)
    if name is None:
        raise B2MMLError(
            f"recipe {model.id!r}: a {model.recipe_type} recipe has no BatchML MasterRecipe or "
            "ControlRecipe element; BatchML's general and site recipe (GRecipe) has another "
            "structure (process stages, operations and actions): write an "
            "isa95.general_recipe.GeneralRecipe"
        )
    if model.batch_id is not None and model.recipe_type != RecipeType.CONTROL:
        raise B2MMLError(f"recipe {model.id!r}: only a control recipe carries a batch ID")
    return name


def _recipe_to_tree(model: Recipe, version: str) -> dict[str, Any]:
    _recipe_element(model)
    tree: dict[str, Any] = {"ID": model.id}
    if not (model.version_absent and model.version == "1"):  # absent stays absent
        tree["Version"] = model.version
    _put(tree, "VersionDate", _time(model.version_date))
    _put(tree, "Description", _desc(model.description))
    _put(tree, "BatchID", model.batch_id)
    header: dict[str, Any] = {}
    _put(header, "ProductID", model.product_id)
    _put(header, "ProductName", model.product_name)
    if model.batch_size is not None:
        header["BatchSize"] = {
            "Nominal": _decimal_text(model.batch_size.value),
            **({"UnitOfMeasure": model.batch_size.unit} if model.batch_size.unit else {}),
        }
    _put(tree, "Header", header or None)
    _put(tree, "EquipmentRequirement", [_requirement_tree(r) for r in model.equipment_requirements])
    if model.formula:
        tree["Formula"] = {"Parameter": [_parameter_tree(p) for p in model.formula]}
    _put(tree, "ProcedureLogic", _logic_tree(model.procedure_logic))
    elements = [_procedure_tree(model.procedure)] if model.procedure is not None else []
    elements += [_generic_tree(e) for e in model.elements]
    _put(tree, "RecipeElement", elements)
    return tree


def _recipe_from_tree(tree: dict[str, Any], version: str) -> Recipe:
    return _recipe_of(tree, RecipeType.MASTER)


def _control_recipe_from_tree(tree: dict[str, Any], version: str) -> Recipe:
    return _recipe_of(tree, RecipeType.CONTROL)


def _recipe_of(tree: dict[str, Any], recipe_type: RecipeType) -> Recipe:
    recipe_id = _get(tree, "ID") or ""
    recipe = _where(tree, "MasterRecipe")
    procedure = None
    elements: list[RecipeElement] = []
    for element in _list(tree, "RecipeElement"):
        if procedure is None and _get(element, "RecipeElementType") == "Procedure":
            procedure = _procedure(element)
        else:
            elements.append(_generic(element))
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
    written_version = _get(tree, "Version")
    return _model(
        lambda: Recipe(
            id=recipe_id,
            version=written_version or "1",
            version_absent=written_version is None,
            recipe_type=recipe_type,
            batch_id=_get(tree, "BatchID"),
            version_date=_parse_time(_get(tree, "VersionDate"), f"{recipe}/VersionDate"),
            description=_get(tree, "Description"),
            product_id=_get(header, "ProductID"),
            product_name=_get(header, "ProductName"),
            batch_size=batch_size,
            equipment_requirements=[_requirement(r) for r in _list(tree, "EquipmentRequirement")],
            formula=[_parameter(x) for x in _list(formula, "Parameter")],
            procedure=procedure,
            procedure_logic=_logic(tree.get("ProcedureLogic")),
            elements=elements,
        ),
        recipe,
        tree,
    )


def _recipe_container(models: list[Recipe], version: str) -> tuple[str, dict[str, Any]] | None:
    """Several recipes, or recipes with equipment elements, are written in a
    BatchInformation (master recipes, then control recipes; each distinct equipment
    element once); one plain recipe bare."""
    if len(models) == 1 and not models[0].equipment_elements:
        return None
    equipment: list[EquipmentElement] = []
    for model in models:
        for element in model.equipment_elements:
            if element not in equipment:
                equipment.append(element)
    tree: dict[str, Any] = {}
    for model in models:
        tree.setdefault(_recipe_element(model), []).append(_recipe_to_tree(model, version))
    _put(tree, "EquipmentElement", [_equipment_element_tree(e) for e in equipment])
    return "BatchInformation", tree


def _recipe_from_container(root: dict[str, Any], models: list[Recipe], version: str) -> None:
    """The BatchInformation's equipment elements go with every recipe read from it."""
    elements = [_equipment_element(e) for e in _list(root, "EquipmentElement")]
    if elements:
        for model in models:
            model.equipment_elements = list(elements)
