import Foundation

/// The OpenAPI 3.0 document of the service's routes, served at `/openapi.json`.
enum OpenAPIDocument {
    static func json(server: FoveaServer) -> String {
        let error: [String: Any] = ["description": "An error", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
        let imageBody: [String: Any] = [
            "required": true,
            "content": [
                "image/png": ["schema": ["type": "string", "format": "binary"]],
                "image/jpeg": ["schema": ["type": "string", "format": "binary"]],
                "application/octet-stream": ["schema": ["type": "string", "format": "binary"]],
                "multipart/form-data": ["schema": ["type": "object", "additionalProperties": ["type": "string", "format": "binary"]]],
            ],
        ]
        func errors(_ codes: [Int]) -> [String: Any] {
            Dictionary(uniqueKeysWithValues: codes.map { (String($0), error as Any) })
        }
        let timing: [String: Any] = ["type": "object", "properties": [
            "queued_ms": ["type": "number"], "compute_ms": ["type": "number"], "batch_size": ["type": "integer"],
        ]]
        let classScore: [String: Any] = ["type": "object", "required": ["class", "index", "probability"], "properties": [
            "class": ["type": "string"], "index": ["type": "integer"], "probability": ["type": "number", "minimum": 0, "maximum": 1],
        ]]
        let modelSummary: [String: Any] = ["type": "object", "properties": [
            "name": ["type": "string"], "version": ["type": "string"], "classes": ["type": "integer"],
        ]]
        let topK: [String: Any] = ["name": "top_k", "in": "query", "required": false,
                                   "schema": ["type": "integer", "minimum": 1], "description": "Classes per image (default 5)."]
        let document: [String: Any] = [
            "openapi": "3.0.3",
            "info": ["title": "Fovea inference service", "version": server.version,
                     "description": "Image classification with \(server.classifier.sidecar.architecture), dynamically batched."],
            "paths": [
                "/v1/predict": ["post": [
                    "summary": "Classify one image (raw JPEG/PNG body) or several (multipart/form-data).",
                    "parameters": [topK, ["name": "format", "in": "query", "required": false,
                                          "schema": ["type": "string", "enum": ["json", "html"]]]],
                    "requestBody": imageBody,
                    "responses": errors([400, 413, 415, 503, 504]).merging(["200": [
                        "description": "Top classes per image",
                        "content": ["application/json": ["schema": ["type": "object", "properties": [
                            "model": modelSummary,
                            "predictions": ["type": "array", "items": ["type": "object", "properties": [
                                "image": ["type": "string"], "position": ["type": "integer"],
                                "top": ["type": "array", "items": classScore], "timing": timing,
                            ]]],
                        ]]]],
                    ]]) { $1 },
                ]],
                "/v1/explain": ["post": [
                    "summary": "Grad-CAM heat map of the top class, or of ?class=, as numbers and as a PNG overlay.",
                    "parameters": [["name": "class", "in": "query", "required": false, "schema": ["type": "string"],
                                    "description": "Class index or name."],
                                   ["name": "format", "in": "query", "required": false, "schema": ["type": "string", "enum": ["json", "png"]]]],
                    "requestBody": imageBody,
                    "responses": errors([400, 413, 415, 503, 504]).merging(["200": [
                        "description": "Heat maps",
                        "content": ["application/json": ["schema": ["type": "object", "properties": [
                            "model": modelSummary,
                            "explanations": ["type": "array", "items": ["type": "object", "properties": [
                                "image": ["type": "string"], "class": ["type": "string"], "class_index": ["type": "integer"],
                                "probability": ["type": "number"], "height": ["type": "integer"], "width": ["type": "integer"],
                                "heat_map": ["type": "array", "items": ["type": "array", "items": ["type": "number"]]],
                                "overlay_png": ["type": "string", "description": "data: URL of the overlay"],
                            ]]],
                        ]]],
                                    "image/png": ["schema": ["type": "string", "format": "binary"]]],
                    ]]) { $1 },
                ]],
                "/v1/model": ["get": ["summary": "Architecture, classes, input shape, preprocessing, parameters, precision, batching limits.",
                                      "responses": ["200": ["description": "The model", "content": ["application/json": ["schema": ["type": "object"]]]]]]],
                "/healthz": ["get": ["summary": "Liveness.", "responses": ["200": ["description": "Alive"]]]],
                "/readyz": ["get": ["summary": "Readiness: the model is loaded and warmed up.",
                                    "responses": ["200": ["description": "Ready"], "503": ["description": "Not ready yet, or shutting down"]]]],
                "/metrics": ["get": ["summary": "Prometheus metrics.",
                                     "responses": ["200": ["description": "Text exposition format 0.0.4", "content": ["text/plain": ["schema": ["type": "string"]]]]]]],
                "/openapi.json": ["get": ["summary": "This document.", "responses": ["200": ["description": "OpenAPI 3.0"]]]],
                "/": ["get": ["summary": "The web page.", "responses": ["200": ["description": "HTML", "content": ["text/html": ["schema": ["type": "string"]]]]]]],
            ],
            "components": ["schemas": ["Error": ["type": "object", "required": ["error"], "properties": [
                "error": ["type": "object", "required": ["status", "code", "message"], "properties": [
                    "status": ["type": "integer"], "code": ["type": "string"], "message": ["type": "string"],
                ]],
            ]]]],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
