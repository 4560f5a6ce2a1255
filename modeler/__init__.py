"""The modeler's tools, between the engine and the web app: simulation of a draft diagram in a throw-away engine
(`modeler.simulation`) and the structural diff of two diagrams (`modeler.diagram_diff`).

They use the engine (its parser, validation, calendar) but are not engine services: the engine never imports this
package, and the web app's modeler pages call it.
"""
